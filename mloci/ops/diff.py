"""``diff``: what changed between two artifacts — metadata, metrics, dependencies, files by digest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from packaging.requirements import InvalidRequirement, Requirement

from mloci.ops.inspection import Artifact, inspect
from mloci.store import Session
from mloci.types.json import JSONValue
from mloci.types.reference import Reference

V = TypeVar("V")

_NOT_METADATA = {"metrics", "dependencies", "files", "$schema"}


@dataclass
class Diff:
    """What changed from ``left`` to ``right``: each entry maps a name to its (left, right) values."""

    left: str
    right: str
    same_digest: bool
    metadata: dict[str, tuple[JSONValue, JSONValue]] = field(default_factory=dict)
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    dependencies: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    files: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # path -> digests
    unchanged_files: int = 0

    @property
    def identical(self) -> bool:
        return self.same_digest

    def to_json(self) -> dict[str, Any]:
        def pair(values: tuple[Any, Any]) -> dict[str, Any]:
            return {"left": values[0], "right": values[1]}

        metrics = {}
        for name, (a, b) in self.metrics.items():
            entry = pair((a, b))
            if isinstance(a, int | float) and isinstance(b, int | float):
                entry["delta"] = round(b - a, 10)
            metrics[name] = entry
        return {
            "left": self.left,
            "right": self.right,
            "identical": self.identical,
            "metadata": {k: pair(v) for k, v in self.metadata.items()},
            "metrics": metrics,
            "dependencies": {k: pair(v) for k, v in self.dependencies.items()},
            "files": {k: pair(v) for k, v in self.files.items()},
            "unchangedFiles": self.unchanged_files,
        }


def _changed(
    a: Mapping[str, V], b: Mapping[str, V], keys: set[str] | None = None
) -> dict[str, tuple[V | None, V | None]]:
    names = keys if keys is not None else set(a) | set(b)
    return {k: (a.get(k), b.get(k)) for k in sorted(names) if a.get(k) != b.get(k)}


def _requirements(info: Artifact) -> dict[str, str]:
    deps = info.bundle.dependencies if info.bundle else None
    pinned: dict[str, str] = {}
    for text in (deps.requirements if deps else None) or []:
        try:
            pinned[Requirement(text).name.lower()] = text
        except InvalidRequirement:
            pinned[text] = text
    if deps and deps.python:
        pinned["python"] = f"python {deps.python}"
    return pinned


def diff(left: Reference, right: Reference, *, session: Session | None = None) -> Diff:
    """What changed between two artifacts: metadata, metrics, dependencies and files (by digest)."""
    return compare(inspect(left, session=session), inspect(right, session=session))


def compare(a: Artifact, b: Artifact) -> Diff:
    """What changed between two artifacts already read (by :func:`~mloci.ops.inspection.inspect`)."""
    result = Diff(str(a.reference), str(b.reference), a.digest == b.digest)
    bundle_a = a.bundle.to_document() if a.bundle else {}
    bundle_b = b.bundle.to_document() if b.bundle else {}
    keys = (set(bundle_a) | set(bundle_b)) - _NOT_METADATA
    if keys:
        result.metadata = dict(_changed(bundle_a, bundle_b, keys))
    else:
        result.metadata = dict(_changed(a.annotations, b.annotations))
    result.metrics = _changed(a.metrics, b.metrics)
    result.dependencies = _changed(_requirements(a), _requirements(b))
    files_a = {f.path or str(f.digest): str(f.digest) for f in a.files}
    files_b = {f.path or str(f.digest): str(f.digest) for f in b.files}
    result.files = _changed(files_a, files_b)
    result.unchanged_files = sum(1 for p, d in files_a.items() if files_b.get(p) == d)
    return result
