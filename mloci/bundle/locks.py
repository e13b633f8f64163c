"""Lock files a bundle may carry: the full, pinned set of Python packages it was built against.

Recognised at the bundle's top level, first match wins:

- ``pylock.toml`` / ``pylock.<name>.toml`` (PEP 751): ``[[packages]]`` with ``name``,
  ``version`` and an optional ``marker``;
- ``uv.lock``: ``[[package]]`` entries; the packages reachable from the project (the entry
  whose source is ``editable``/``virtual`` ``"."``) through ``dependencies`` whose markers hold
  for the checked interpreter;
- ``requirements.txt`` (or ``requirements*.txt``) **with** ``--hash=`` options, as written by
  ``pip-compile --generate-hashes`` or ``uv pip compile --generate-hashes``: every line pins
  ``name==version``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.markers import InvalidMarker, Marker, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mloci.errors import Problem, UsageError
from mloci.types import annotations as ann
from mloci.types.manifest import Descriptor, Manifest

LockKind = Literal["pylock", "uv", "requirements"]
_MAX_LOCK = 16 << 20


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str


@dataclass(frozen=True)
class LockFile:
    path: str  # relative to the bundle
    kind: LockKind
    packages: tuple[LockedPackage, ...]


def lock_kind(root: Path, path: str) -> LockKind | None:
    """What kind of lock file ``path`` (relative to ``root``) is, or None."""
    if "/" in path:
        return None
    if path == "pylock.toml" or re.fullmatch(r"pylock\.[^.]+\.toml", path):
        return "pylock"
    if path == "uv.lock":
        return "uv"
    if re.fullmatch(r"requirements[\w.-]*\.txt", path):
        try:
            with (root / path).open("rb") as handle:
                return "requirements" if b"--hash=" in handle.read(_MAX_LOCK) else None
        except OSError:
            return None
    return None


def _holds(marker: str | None, environment: Mapping[str, str] | None) -> bool:
    """Whether ``marker`` holds in ``environment``; None means every environment (the full set)."""
    if not marker or environment is None:
        return True
    try:
        return Marker(marker).evaluate({**environment, "extra": ""})
    except (InvalidMarker, UndefinedEnvironmentName):
        return True


def _pylock(document: dict[str, Any], environment: Mapping[str, str] | None) -> list[LockedPackage]:
    packages = []
    for entry in document.get("packages") or []:
        wanted = isinstance(entry, dict) and entry.get("name") and entry.get("version")
        if wanted and _holds(entry.get("marker"), environment):
            packages.append(LockedPackage(str(entry["name"]), str(entry["version"])))
    return packages


def _uv(document: dict[str, Any], environment: Mapping[str, str] | None) -> list[LockedPackage]:
    entries = [e for e in document.get("package") or [] if isinstance(e, dict) and e.get("name")]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_name.setdefault(canonicalize_name(entry["name"]), []).append(entry)

    def is_project(entry: dict[str, Any]) -> bool:
        source = entry.get("source") or {}
        return isinstance(source, dict) and (source.get("editable") == "." or source.get("virtual") == ".")

    roots = [e for e in entries if is_project(e)] or entries
    seen: set[tuple[str, str]] = set()
    packages: list[LockedPackage] = []
    stack = list(roots)
    while stack:
        entry = stack.pop()
        key = (canonicalize_name(entry["name"]), str(entry.get("version", "")))
        if key in seen:
            continue
        seen.add(key)
        if not is_project(entry) and entry.get("version"):
            packages.append(LockedPackage(str(entry["name"]), str(entry["version"])))
        for edge in entry.get("dependencies") or []:
            if (
                not isinstance(edge, dict)
                or not edge.get("name")
                or not _holds(edge.get("marker"), environment)
            ):
                continue
            candidates = by_name.get(canonicalize_name(edge["name"]), [])
            if edge.get("version"):
                candidates = [c for c in candidates if c.get("version") == edge["version"]] or candidates
            stack.extend(candidates[:1])
    return sorted(packages, key=lambda p: canonicalize_name(p.name))


def _requirements(text: str, environment: Mapping[str, str] | None) -> list[LockedPackage]:
    packages = []
    logical = re.sub(r"\\\r?\n", " ", text)
    for raw in logical.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        line = re.sub(r"\s--hash=\S+", "", line).strip()
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        pins = [s for s in req.specifier if s.operator in ("==", "===")]
        if pins and _holds(str(req.marker) if req.marker else None, environment):
            packages.append(LockedPackage(req.name, pins[0].version))
    return packages


def parse_lock(name: str, kind: LockKind, text: str, environment: Mapping[str, str] | None) -> LockFile:
    """The packages of lock file ``name`` that apply in ``environment`` (None: all of them)."""
    if kind == "requirements":
        return LockFile(name, kind, tuple(_requirements(text, environment)))
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{name} is not valid TOML: {exc}") from None
    packages = _pylock(document, environment) if kind == "pylock" else _uv(document, environment)
    return LockFile(name, kind, tuple(packages))


def read_lock(root: Path, environment: Mapping[str, str] | None) -> LockFile | None:
    """The bundle's lock file, with the packages that apply in ``environment`` (PEP 508 markers;
    None: every package, as an SBOM lists them)."""
    candidates = sorted(p.name for p in root.iterdir() if p.is_file())
    order = {"pylock": 0, "uv": 1, "requirements": 2}
    found = sorted(
        ((kind, name) for name in candidates if (kind := lock_kind(root, name)) is not None),
        key=lambda item: (order[item[0]], item[1]),
    )
    if not found:
        return None
    kind, name = found[0]
    try:
        text = (root / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the lock file {name}: {exc}") from None
    return parse_lock(name, kind, text, environment)


def lock_layer(manifest: Manifest | None) -> tuple[str, LockKind, Descriptor] | None:
    """The layer ``push`` marked as the bundle's lock file: (file name, kind, descriptor)."""
    for layer in manifest.layers if manifest is not None else []:
        name = layer.annotation(ann.TITLE) or ""
        kind = layer.annotation(ann.LOCK_FORMAT)
        if layer.annotation(ann.ROLE) != ann.ROLE_LOCK_FILE or kind not in ("pylock", "uv", "requirements"):
            continue
        if not name or "/" in name or name.startswith(".") or layer.size > _MAX_LOCK:
            continue
        return name, kind, layer  # type: ignore[return-value]  # kind checked against LockKind above
    return None


def unpinned_requirements(root: Path) -> list[Problem]:
    """Lines of the bundle's top-level ``requirements*.txt`` that do not pin ``name==version``
    (``validate`` warns: such a bundle does not say what it was built with)."""
    warnings: list[Problem] = []
    try:
        names = sorted(
            p.name
            for p in root.iterdir()
            if p.is_file() and re.fullmatch(r"requirements[\w.-]*\.txt", p.name)
        )
    except OSError:
        return warnings
    for name in names:
        try:
            text = (root / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        logical = re.sub(r"\\\r?\n", " ", text)
        for number, raw in enumerate(logical.splitlines(), start=1):
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith(("#", "-")):
                continue
            try:
                req = Requirement(re.sub(r"\s--hash=\S+", "", line).strip())
            except InvalidRequirement:
                warnings.append(Problem(f"{name}:{number}", f"{line!r} is not a requirement"))
                continue
            specs = list(req.specifier)
            if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
                warnings.append(
                    Problem(
                        f"{name}:{number}", f"{line!r} is not pinned; use {req.name}==VERSION or a lock file"
                    )
                )
    return warnings
