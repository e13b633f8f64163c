"""Core metadata (``METADATA`` in a wheel, ``PKG-INFO`` in an sdist): finding, reading and checking it."""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from packaging.metadata import parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from mloci.errors import UsageError
from mloci.python.filenames import parse_version

# Core metadata holds the long description, so it can be large, but not unboundedly: a cap keeps
# a crafted archive (a "zip bomb" METADATA) from exhausting memory.
MAX_METADATA_SIZE = 16 << 20


@dataclass(frozen=True)
class CoreMetadata:
    """The fields mloci uses, plus the exact bytes (served as the PEP 658 ``.metadata`` file)."""

    raw: bytes
    metadata_version: str
    name: str
    version: Version
    requires_python: str | None = None
    summary: str | None = None
    license_expression: str | None = None


def parse_core_metadata(data: bytes, what: str) -> CoreMetadata:
    """Parse core metadata bytes; UsageError naming ``what`` when a required field is missing or invalid."""
    raw, _ = parse_email(data)
    name = raw.get("name")
    version = raw.get("version")
    metadata_version = raw.get("metadata_version")
    if not metadata_version:
        raise UsageError(f"{what} has no Metadata-Version field")
    if not name or not version:
        raise UsageError(f"{what} lacks the Name or Version field")
    requires_python = raw.get("requires_python")
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            raise UsageError(f"{what} has an invalid Requires-Python {requires_python!r}") from None
    try:
        parsed_version = parse_version(version)
    except UsageError as exc:
        raise UsageError(f"{what}: {exc.message}") from None
    return CoreMetadata(
        raw=data,
        metadata_version=metadata_version,
        name=name,
        version=parsed_version,
        requires_python=requires_python or None,
        summary=raw.get("summary") or None,
        license_expression=raw.get("license_expression") or None,
    )


def read_wheel_metadata(handle: BinaryIO, filename: str) -> bytes:
    """The ``*.dist-info/METADATA`` of the wheel in ``handle`` (which must be seekable)."""
    try:
        with zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
            dist_infos = sorted(
                {
                    n.split("/", 1)[0]
                    for n in names
                    if n.count("/") == 1 and n.split("/", 1)[0].endswith(".dist-info")
                }
            )
            if len(dist_infos) != 1:
                found = "no" if not dist_infos else f"{len(dist_infos)}"
                raise UsageError(f"{filename} is not a valid wheel: {found} top-level .dist-info directories")
            dist_info = dist_infos[0]
            for required in ("METADATA", "WHEEL"):
                if f"{dist_info}/{required}" not in names:
                    raise UsageError(f"{filename} is not a valid wheel: {dist_info}/{required} is missing")
            info = archive.getinfo(f"{dist_info}/METADATA")
            if info.file_size > MAX_METADATA_SIZE:
                raise UsageError(f"{filename}: METADATA is larger than {MAX_METADATA_SIZE} bytes")
            with archive.open(info) as member:
                data = member.read(MAX_METADATA_SIZE + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise UsageError(f"{filename} is not a valid wheel (zip archive): {exc}") from None
    if len(data) > MAX_METADATA_SIZE:
        raise UsageError(f"{filename}: METADATA is larger than {MAX_METADATA_SIZE} bytes")
    return data


def read_sdist_metadata(handle: BinaryIO, filename: str) -> bytes:
    """The top-level ``PKG-INFO`` of the sdist in ``handle`` (``NAME-VERSION/PKG-INFO``)."""
    try:
        with tarfile.open(fileobj=handle, mode="r:gz") as archive:
            for member in archive:
                parts = member.name.removeprefix("./").split("/")
                if len(parts) != 2 or parts[1] != "PKG-INFO":
                    continue
                if not member.isfile():
                    raise UsageError(f"{filename}: {member.name} is not a regular file")
                if member.size > MAX_METADATA_SIZE:
                    raise UsageError(f"{filename}: PKG-INFO is larger than {MAX_METADATA_SIZE} bytes")
                extracted = archive.extractfile(member)
                if extracted is None:
                    break
                with extracted:
                    return extracted.read(MAX_METADATA_SIZE + 1)
    except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        raise UsageError(f"{filename} is not a valid sdist (gzip-compressed tar): {exc}") from None
    raise UsageError(f"{filename} is not a valid sdist: it has no top-level PKG-INFO")
