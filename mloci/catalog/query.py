"""The models search: free text, metric filters (``auc>0.9``) and environments (``env:prod``)."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mloci.catalog.models import ModelSummary
from mloci.errors import UsageError

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_FILTER = re.compile(r"^([A-Za-z0-9_.\-/]+)(>=|<=|!=|>|<|=)(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)$")


@dataclass(frozen=True)
class MetricFilter:
    metric: str
    op: str
    value: float

    def matches(self, metrics: dict[str, object]) -> bool:
        actual = metrics.get(self.metric)
        if isinstance(actual, bool) or not isinstance(actual, int | float) or not math.isfinite(actual):
            return False
        return _OPERATORS[self.op](float(actual), self.value)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


@dataclass(frozen=True)
class Query:
    """Terms all of which must match: words (name, description, features, framework, owners, license),
    ``METRIC<op>NUMBER`` on the latest version's metrics, ``env:NAME`` for models with that environment."""

    text: str = ""
    words: tuple[str, ...] = ()
    metrics: tuple[MetricFilter, ...] = ()
    environments: tuple[str, ...] = field(default=())

    @classmethod
    def parse(
        cls, text: str | None, *, metric_filters: tuple[str, ...] = (), env: str | None = None
    ) -> Query:
        text = (text or "").strip()
        if len(text) > 1000:
            raise UsageError("the search is longer than 1000 characters")
        words: list[str] = []
        metrics: list[MetricFilter] = []
        environments: list[str] = [env] if env else []
        for token in [*text.split(), *metric_filters]:
            match = _FILTER.match(token)
            if match:
                metrics.append(MetricFilter(match[1], match[2], float(match[3])))
            elif token.lower().startswith("env:") and len(token) > 4:
                environments.append(token[4:])
            elif any(op in token for op in ("<", ">")) and token in metric_filters:
                raise UsageError(f"invalid metric filter {token!r}", hint="e.g. auc>0.9 or loss<=0.2")
            else:
                words.append(token.lower())
        return cls(text, tuple(words), tuple(metrics), tuple(environments))

    def matches(self, model: ModelSummary) -> bool:
        metrics = model.latest.metrics if model.latest else {}
        if not all(f.matches(metrics) for f in self.metrics):
            return False
        if not all(model.environments.get(e) is not None for e in self.environments):
            return False
        haystack = " ".join(
            [
                model.name,
                model.description or "",
                model.framework or "",
                model.license or "",
                *model.owners,
                *model.features,
            ]
        ).lower()
        return all(word in haystack for word in self.words)
