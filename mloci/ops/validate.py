"""Validate: every problem of a bundle directory at once, without raising."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mloci.bundle.load import inspect_bundle
from mloci.bundle.locks import unpinned_requirements
from mloci.bundle.manifest import BundleManifest
from mloci.errors import Problem


@dataclass(frozen=True)
class ValidationReport:
    """What ``mloci validate`` reports: the manifest when valid, else every problem with its field path."""

    bundle: Path
    manifest: BundleManifest | None
    files: tuple[str, ...]
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...] = ()  # worth fixing, not invalid: unpinned requirements files

    @property
    def valid(self) -> bool:
        return self.manifest is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "valid": self.valid,
            "problems": [{"path": p.path, "message": p.message} for p in self.problems],
            "files": list(self.files),
            "warnings": [{"path": w.path, "message": w.message} for w in self.warnings],
        }


def validate(path: Path) -> ValidationReport:
    """Check the bundle at ``path`` (schema, semantics, files); invalid bundles are reported, not raised."""
    bundle, problems = inspect_bundle(path)
    warnings = tuple(unpinned_requirements(path)) if path.is_dir() else ()
    if bundle is None:
        return ValidationReport(path, None, (), tuple(problems), warnings)
    return ValidationReport(path, bundle.manifest, tuple(f.path for f in bundle.files), (), warnings)
