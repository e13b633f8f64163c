"""Distribution file names (wheels: the binary distribution format, PEP 427; sdists: PEP 625),
project-name normalization (PEP 503) and the OCI tag that stands for a version."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from mloci.errors import UsageError

# The name-normalization spec: ASCII letters and digits, with '.', '_', '-' inside.
_PROJECT_NAME = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE)
_MAX_FILENAME = 255
# Every character a valid wheel or sdist name can hold; nothing that needs quoting in a URL path
# segment or an HTTP header (the index serves files under these names).
_FILENAME_CHARS = re.compile(r"[A-Za-z0-9._+!-]+")


class DistKind(StrEnum):
    """What a file is; the values are the ``filetype`` field of the upload API (twine sends them)."""

    WHEEL = "bdist_wheel"
    SDIST = "sdist"


def is_project_name(name: str) -> bool:
    return _PROJECT_NAME.fullmatch(name) is not None


def normalize_name(name: str) -> str:
    """The PEP 503 normalized name (``Feature_Kit`` → ``feature-kit``); UsageError when it is no project name."""
    if not is_project_name(name):
        raise UsageError(
            f"invalid project name {name!r}",
            hint="names are ASCII letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
        )
    return str(canonicalize_name(name))


def parse_version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise UsageError(
            f"invalid version {text!r}", hint="versions follow PEP 440, e.g. 1.2.0 or 2.0rc1"
        ) from None


def version_tag(version: Version | str) -> str:
    """The OCI tag for a version: its normalized PEP 440 form with '+' written '_' and '!' written '-'.

    Normalized versions never contain '_' or '-', so the mapping is reversible; OCI tags allow
    neither '+' nor '!'.
    """
    parsed = version if isinstance(version, Version) else parse_version(version)
    return str(parsed).replace("+", "_").replace("!", "-")


def version_of_tag(tag: str) -> Version | None:
    """The version a tag stands for, or None for any other tag (signatures, aliases, …)."""
    text = tag.replace("_", "+").replace("-", "!")
    try:
        version = Version(text)
    except InvalidVersion:
        return None
    return version if version_tag(version) == tag else None


@dataclass(frozen=True)
class DistFilename:
    """A parsed distribution file name."""

    filename: str
    project: str  # normalized
    version: Version
    kind: DistKind


def parse_filename(filename: str) -> DistFilename:
    """Parse a wheel (``.whl``) or sdist (``.tar.gz``) file name; UsageError for anything else."""
    if not _FILENAME_CHARS.fullmatch(filename) or filename.startswith(".") or len(filename) > _MAX_FILENAME:
        raise UsageError(f"{filename!r} is not a distribution file name")
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            return DistFilename(filename, str(name), version, DistKind.WHEEL)
        if filename.endswith(".tar.gz"):
            name, version = parse_sdist_filename(filename)
            return DistFilename(filename, str(name), version, DistKind.SDIST)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
        raise UsageError(f"{filename} is not a valid distribution file name: {exc}") from None
    raise UsageError(
        f"{filename} is neither a wheel nor an sdist",
        hint="expected NAME-VERSION-PYTAG-ABITAG-PLATFORM.whl or NAME-VERSION.tar.gz",
    )
