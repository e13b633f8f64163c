"""Loading and validating a bundle directory in one pass that reports every problem."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mloci.bundle.checksums import hashing_lookup, read_checksums, verify_checksums
from mloci.bundle.files import FileEntry, scan
from mloci.bundle.jsondoc import JsonProblem, read_document, read_json
from mloci.bundle.manifest import MANIFEST_FILENAME, METRICS_FILENAME, BundleManifest
from mloci.bundle.messages import json_type, problems_from
from mloci.bundle.pulled import restored
from mloci.errors import BundleInvalidError, Problem
from mloci.types.digest import Digest


@dataclass(frozen=True)
class Bundle:
    """A validated bundle: its root, its manifest (metrics.json merged in) and its files in path order."""

    root: Path
    manifest: BundleManifest
    files: tuple[FileEntry, ...]
    manifest_bytes: bytes | None = None
    """``manifest.json`` exactly as read (the manifest was validated from these bytes)."""


_FAILED = object()  # a JSON file that could not be read; its problem is already recorded


def _read_json(path: Path, problems: list[Problem]) -> Any:
    try:
        return read_json(path, path.name)
    except JsonProblem as exc:
        problems.append(exc.problem)
        return _FAILED


def _metrics_file(root: Path, problems: list[Problem]) -> dict[str, float] | None:
    path = root / METRICS_FILENAME
    if not path.exists():
        return None
    data = _read_json(path, problems)
    if data is _FAILED:
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


def inspect_bundle(root: Path, *, checksums: bool = True) -> tuple[Bundle | None, list[Problem]]:
    """Validate ``root``; return the bundle when there are no problems, and every problem found.

    With ``checksums`` the files a ``sha256.txt``/``SHA256SUMS`` lists are hashed and compared;
    without, only the checksum files' syntax is checked (the caller compares digests it computes
    anyway, see :func:`checksum_problems`).
    """
    problems: list[Problem] = []
    if not root.is_dir():
        return None, [Problem("", "no such directory" if not root.exists() else "not a directory")]
    manifest_path = root / MANIFEST_FILENAME
    document: Any = _FAILED
    manifest_bytes = b""
    if manifest_path.exists():
        try:
            document, manifest_bytes = read_document(manifest_path, MANIFEST_FILENAME)
        except JsonProblem as exc:
            problems.append(exc.problem)
    else:
        problems.append(Problem(MANIFEST_FILENAME, "missing; create one with 'mloci init'"))

    manifest: BundleManifest | None = None
    if isinstance(document, dict):
        try:
            manifest = restored(root, BundleManifest.model_validate(document), manifest_bytes)
        except ValidationError as exc:
            problems.extend(problems_from(exc, BundleManifest))
    elif document is not _FAILED:
        problems.append(
            Problem(MANIFEST_FILENAME, f"must be a JSON object {{...}}, not {json_type(document)}")
        )

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
    listed, checksum_syntax = read_checksums(root)
    problems.extend(checksum_syntax)
    if checksums and listed:
        sources = {f.path: f.source for f in files}
        with hashing_lookup(sources) as digest_of:
            problems.extend(verify_checksums(listed, sources, digest_of))

    if problems or manifest is None:
        return None, problems
    return Bundle(root=root, manifest=manifest, files=tuple(files), manifest_bytes=manifest_bytes), []


def _invalid(root: Path, problems: list[Problem]) -> BundleInvalidError:
    first = problems[0] if problems else Problem("", "invalid bundle")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return BundleInvalidError(f"invalid bundle {root}: {first}{more}", problems)


def load_bundle(root: Path, *, checksums: bool = True) -> Bundle:
    """The validated bundle at ``root``, or :class:`BundleInvalidError` listing every problem.

    ``checksums=False`` defers comparing files with ``sha256.txt``/``SHA256SUMS`` to the caller,
    who must call :func:`check_checksums` with the digests it computes.
    """
    bundle, problems = inspect_bundle(root, checksums=checksums)
    if bundle is None:
        raise _invalid(root, problems)
    return bundle


def check_checksums(bundle: Bundle, digests: Mapping[str, tuple[Digest, int]]) -> None:
    """Compare the bundle's checksum files with ``digests`` (path -> digest, size), already computed.

    Raises :class:`BundleInvalidError` naming each file that is missing or does not match.
    """
    listed, _ = read_checksums(bundle.root)
    if not listed:
        return
    sources = {f.path: f.source for f in bundle.files}
    with hashing_lookup(sources) as fallback:
        problems = verify_checksums(
            listed, sources, lambda path: digests[path][0] if path in digests else fallback(path)
        )
    if problems:
        raise _invalid(bundle.root, problems)
