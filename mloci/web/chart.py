"""Metric charts as data for a server-rendered SVG: coordinates are computed here, markup is a template."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mloci.catalog.models import VersionSummary

WIDTH = 320
HEIGHT = 120
_PAD_X = 36
_PAD_Y = 14


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str  # version
    value: float


@dataclass(frozen=True)
class Chart:
    metric: str
    points: tuple[Point, ...]
    low: float
    high: float

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def latest(self) -> Point:
        return self.points[-1]


def charts(versions: list[VersionSummary], *, limit: int = 12) -> list[Chart]:
    """One chart per numeric metric, versions oldest first (``versions`` comes newest first)."""
    ordered = list(reversed(versions))
    names: list[str] = []
    for v in ordered:
        names += [n for n in v.metrics if n not in names]
    result = []
    for name in sorted(names)[:limit]:
        series = [
            (v.version or v.digest[7:19], float(v.metrics[name]))
            for v in ordered
            if isinstance(v.metrics.get(name), int | float)
            and not isinstance(v.metrics.get(name), bool)
            and math.isfinite(float(v.metrics[name]))
        ]
        if not series:
            continue
        low = min(value for _, value in series)
        high = max(value for _, value in series)
        span = (high - low) or abs(high) or 1.0
        step = (WIDTH - 2 * _PAD_X) / max(len(series) - 1, 1)
        points = tuple(
            Point(
                x=_PAD_X + (i * step if len(series) > 1 else (WIDTH - 2 * _PAD_X) / 2),
                y=HEIGHT - _PAD_Y - (value - low) / span * (HEIGHT - 2 * _PAD_Y),
                label=label,
                value=value,
            )
            for i, (label, value) in enumerate(series)
        )
        result.append(Chart(name, points, low, high))
    return result


__all__ = ["HEIGHT", "WIDTH", "Chart", "Point", "charts"]
