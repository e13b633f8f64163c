"""A distribution file checked against itself: its name, its core metadata and its digest agree."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mloci.errors import UsageError
from mloci.python.filenames import DistFilename, DistKind, normalize_name, parse_filename
from mloci.python.metadata import CoreMetadata, parse_core_metadata, read_sdist_metadata, read_wheel_metadata
from mloci.types.digest import Digest, hash_file

_BLOCK = 1 << 20


@dataclass(frozen=True)
class Distribution:
    """A wheel or sdist ready to publish. ``opener`` gives its bytes (again) for uploading."""

    name: DistFilename
    metadata: CoreMetadata
    digest: Digest  # sha256 of the file: the layer digest and the index's #sha256= hash
    size: int
    opener: Callable[[], BinaryIO]

    @property
    def filename(self) -> str:
        return self.name.filename

    @property
    def project(self) -> str:
        """The normalized project name."""
        return self.name.project

    @property
    def version(self) -> str:
        """The normalized version."""
        return str(self.name.version)

    @property
    def kind(self) -> DistKind:
        return self.name.kind


def _read_metadata(name: DistFilename, handle: BinaryIO) -> CoreMetadata:
    handle.seek(0)
    if name.kind is DistKind.WHEEL:
        raw = read_wheel_metadata(handle, name.filename)
        what = f"{name.filename}: METADATA"
    else:
        raw = read_sdist_metadata(handle, name.filename)
        what = f"{name.filename}: PKG-INFO"
    metadata = parse_core_metadata(raw, what)
    if normalize_name(metadata.name) != name.project:
        raise UsageError(
            f"{name.filename} names project {name.project!r} but its metadata says {metadata.name!r}",
            hint="rebuild the distribution; file names must match the metadata",
        )
    if metadata.version != name.version:
        raise UsageError(
            f"{name.filename} names version {name.version} but its metadata says {metadata.version}",
            hint="rebuild the distribution; file names must match the metadata",
        )
    return metadata


def read_distribution(path: Path) -> Distribution:
    """Inspect the wheel or sdist at ``path``: UsageError unless name, metadata and contents agree."""
    name = parse_filename(path.name)
    try:
        with path.open("rb") as handle:
            metadata = _read_metadata(name, handle)
        digest, size = hash_file(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return Distribution(name, metadata, digest, size, opener=lambda: path.open("rb"))


@dataclass(frozen=True)
class Hashes:
    sha256: str
    blake2_256: str
    md5: str
    size: int


def hash_stream(handle: BinaryIO) -> Hashes:
    """The digests the upload API sends along (sha256, blake2b-256, md5) of a seekable stream, in one pass."""
    handle.seek(0)
    sha256 = hashlib.sha256()
    blake2 = hashlib.blake2b(digest_size=32)
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    while block := handle.read(_BLOCK):
        sha256.update(block)
        blake2.update(block)
        md5.update(block)
        size += len(block)
    return Hashes(sha256.hexdigest(), blake2.hexdigest(), md5.hexdigest(), size)


def read_upload(
    filename: str, handle: BinaryIO, hashes: Hashes, opener: Callable[[], BinaryIO]
) -> Distribution:
    """Inspect an uploaded file held in the seekable ``handle`` (whose ``hashes`` are known)."""
    name = parse_filename(filename)
    metadata = _read_metadata(name, handle)
    return Distribution(name, metadata, Digest("sha256", hashes.sha256), hashes.size, opener=opener)
