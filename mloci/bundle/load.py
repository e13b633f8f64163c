"""Loading and validating a bundle directory in one pass that reports every problem."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mloci.bundle.files import FileEntry, scan
from mloci.bundle.manifest import MANIFEST_FILENAME, METRICS_FILENAME, BundleManifest
from mloci.errors import BundleInvalidError, Problem


@dataclass(frozen=True)
class Bundle:
    """A validated bundle: its root, its manifest (metrics.json merged in) and its files in path order."""

    root: Path
    manifest: BundleManifest
    files: tuple[FileEntry, ...]


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _read_json(path: Path, problems: list[Problem]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(Problem(path.name, "not UTF-8 text"))
        return None
    except OSError as exc:
        problems.append(Problem(path.name, f"cannot read: {exc.strerror or exc}"))
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(
            Problem(path.name, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        )
        return None


def _metrics_file(root: Path, problems: list[Problem]) -> dict[str, float] | None:
    path = root / METRICS_FILENAME
    if not path.is_file():
        return None
    data = _read_json(path, problems)
    if data is None:
        return None
    if not isinstance(data, dict):
        problems.append(Problem(METRICS_FILENAME, "must be a JSON object of metric name → number"))
        return None
    metrics: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(Problem(f"{METRICS_FILENAME}.{key}", "must be a finite number"))
        else:
            metrics[key] = value
    return metrics


def inspect_bundle(root: Path) -> tuple[Bundle | None, list[Problem]]:
    """Validate ``root``; return the bundle when there are no problems, and every problem found."""
    problems: list[Problem] = []
    if not root.is_dir():
        return None, [Problem(str(root), "not a directory")]
    manifest_path = root / MANIFEST_FILENAME
    document: Any = None
    if manifest_path.is_file():
        document = _read_json(manifest_path, problems)
    else:
        problems.append(Problem(MANIFEST_FILENAME, "missing; create one with 'mloci init'"))

    manifest: BundleManifest | None = None
    if isinstance(document, dict):
        try:
            manifest = BundleManifest.model_validate(document)
        except ValidationError as exc:
            for error in exc.errors():
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    message = "unknown field (free-form data belongs under 'extensions')"
                problems.append(Problem(_loc(error["loc"]), message))
    elif document is not None:
        problems.append(Problem(MANIFEST_FILENAME, "must be a JSON object"))

    files, scan_problems = scan(root)
    problems.extend(scan_problems)
    present = {f.path for f in files}

    file_metrics = _metrics_file(root, problems)
    if manifest is not None:
        for index, path in enumerate(manifest.files):
            if path not in present:
                problems.append(Problem(f"files[{index}]", f"{path!r} is listed but not in the bundle"))
        for index, test in enumerate(manifest.tests):
            for field in ("inputs", "expected"):
                needed = getattr(test, field, None)
                if needed is not None and needed not in present:
                    problems.append(Problem(f"tests[{index}].{field}", f"{needed!r} is not in the bundle"))
        if file_metrics:
            for key, value in manifest.metrics.items():
                if key in file_metrics and file_metrics[key] != value:
                    problems.append(
                        Problem(
                            f"metrics.{key}", f"{value} here but {file_metrics[key]} in {METRICS_FILENAME}"
                        )
                    )
            merged = {**file_metrics, **manifest.metrics}
            manifest = manifest.model_copy(update={"metrics": dict(sorted(merged.items()))})
    if not any(f.path != MANIFEST_FILENAME for f in files):
        problems.append(Problem("", "the bundle holds no files besides its manifest"))

    if problems or manifest is None:
        return None, problems
    return Bundle(root=root, manifest=manifest, files=tuple(files)), []


def load_bundle(root: Path) -> Bundle:
    """The validated bundle at ``root``, or :class:`BundleInvalidError` listing every problem."""
    bundle, problems = inspect_bundle(root)
    if bundle is None:
        first = problems[0] if problems else Problem("", "invalid bundle")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BundleInvalidError(f"invalid bundle {root}: {first}{more}", problems)
    return bundle
