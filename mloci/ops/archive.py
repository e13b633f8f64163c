"""``export`` and ``import``: artifacts as one OCI image-layout tar, for air-gapped transfer.

``export`` copies each artifact (and, with referrers, its signatures, SBOMs, attestations and
promotion records) into a scratch OCI layout, then writes that layout as a deterministic tar:
entries sorted by name, directories ``0755`` and files ``0644``, uid/gid ``0``, mtime ``0``,
ustar headers, ``index.json`` re-serialized canonically with its entries sorted. Exporting the
same artifacts twice gives the same bytes. ``--compress`` gzips it (level 6, no name, mtime 0).
The archive is written next to the target and renamed into place when complete.

``import`` copies every artifact of an archive into the local store or a registry namespace
with the same digests; ``oci-archive:PATH`` references read it in place (see
:mod:`mloci.store.archive`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mloci import settings
from mloci.bundle import tarpack
from mloci.errors import MlociError, UsageError
from mloci.ops.referrers import is_fallback_tag
from mloci.ops.transfer import Copier
from mloci.store import LayoutStore, Session, scoped
from mloci.store.archive import ArchiveReference, ArchiveStore
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.digest import Digest
from mloci.types.manifest import canonical_json
from mloci.types.reference import Reference, is_valid_repository

_CHUNK = 1 << 20
GZIP_LEVEL = 6


@dataclass(frozen=True)
class ArchivedArtifact:
    reference: str
    digest: Digest

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": str(self.digest)}


@dataclass
class ExportResult:
    output: Path
    digest: Digest  # of the archive file itself
    size: int
    artifacts: list[ArchivedArtifact] = field(default_factory=list)
    referrers: list[str] = field(default_factory=list)
    blobs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "digest": str(self.digest),
            "size": self.size,
            "artifacts": [a.to_json() for a in self.artifacts],
            "referrers": self.referrers,
            "blobs": self.blobs,
        }


@dataclass
class ImportResult:
    archive: Path
    artifacts: list[ArchivedArtifact] = field(default_factory=list)
    referrers: list[str] = field(default_factory=list)
    blobs_copied: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "artifacts": [a.to_json() for a in self.artifacts],
            "referrers": self.referrers,
            "blobsCopied": self.blobs_copied,
            "blobsPresent": self.blobs_present,
            "bytesCopied": self.bytes_copied,
        }


# --- export ----------------------------------------------------------------------------------


def _scratch_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    parent = settings.home() / "tmp"
    parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=parent)


def export(
    references: Sequence[Reference],
    output: Path,
    *,
    with_referrers: bool = False,
    compress: bool = False,
    session: Session | None = None,
) -> ExportResult:
    """Write ``references`` (and their referrers) into the OCI image-layout tar ``output``."""
    if not references:
        raise UsageError("name at least one artifact to export")
    if output.is_dir():
        raise UsageError(f"{output} is a directory; name the archive file, e.g. {output / 'models.tar'}")
    with _scratch_dir("export-") as scratch, scoped(session) as active:
        layout = LayoutStore(Path(scratch))
        artifacts: list[ArchivedArtifact] = []
        referrers: list[str] = []
        for ref in references:
            store = active.store(ref)
            descriptor = store.resolve(ref)
            repository = ref.repository
            if isinstance(ref, ArchiveReference) and not ref.name_given:
                repository = _archive_repository(store, ref) or repository
            destination = Reference(None, repository, tag=ref.tag)
            copier = Copier(store, ref, layout, destination, concurrency=active.options.concurrency)
            copier.manifest(descriptor.digest, tag=ref.tag)
            if with_referrers:
                copier.referrers(descriptor.digest)
                referrers += copier.stats.referrers
            artifacts.append(ArchivedArtifact(str(destination.pinned(descriptor.digest)), descriptor.digest))
        digest, size, blobs = write_layout_tar(Path(scratch) / "oci", output, compress=compress)
    return ExportResult(output, digest, size, artifacts, referrers, blobs)


def _archive_repository(store: Any, ref: ArchiveReference) -> str | None:
    """The repository an archive entry belongs to (re-exporting from an archive keeps names)."""
    if isinstance(store, ArchiveStore) and ref.tag is not None:
        for entry in store.entries():
            name = store.ref_name(entry) or ""
            if name.rpartition(":")[2] == ref.tag:
                return store.repository_of(entry)
    return None


def _sorted_index(layout: Path) -> bytes:
    document = json.loads((layout / "index.json").read_bytes())
    entries = sorted(
        document.get("manifests") or [],
        key=lambda e: (
            (e.get("annotations") or {}).get(ann.REF_NAME, ""),
            (e.get("annotations") or {}).get(ann.REPOSITORY, ""),
            e.get("digest", ""),
        ),
    )
    return canonical_json({"manifests": entries, "mediaType": mediatype.OCI_INDEX, "schemaVersion": 2})


class _Hashing:
    """Writes through to a file while hashing and counting what was written."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.handle.write(data)
        self.hasher.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.handle.flush()


def _tar_entries(layout: Path) -> Iterator[tuple[str, Path | bytes | None]]:
    """(name, content) in archive order: a Path to copy, bytes, or None for a directory."""
    blobs = sorted((layout / "blobs").glob("*/*"), key=lambda p: (p.parent.name, p.name))
    yield "blobs/", None
    for algorithm in sorted({p.parent.name for p in blobs}):
        yield f"blobs/{algorithm}/", None
        for path in blobs:
            if path.parent.name == algorithm:
                yield f"blobs/{algorithm}/{path.name}", path
    yield "index.json", _sorted_index(layout)
    yield "oci-layout", (layout / "oci-layout").read_bytes()


def write_layout_tar(layout: Path, output: Path, *, compress: bool) -> tuple[Digest, int, int]:
    """Write the OCI layout directory ``layout`` as a deterministic tar; return (digest, size, blob count)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    blobs = 0
    try:
        with os.fdopen(fd, "wb") as raw:
            sink = _Hashing(raw)
            with (
                gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=GZIP_LEVEL)
                if compress
                else contextlib.nullcontext(sink)
            ) as out:
                for name, content in _tar_entries(layout):
                    if content is None:
                        out.write(tarpack.directory_header(name))
                    elif isinstance(content, bytes):
                        out.write(
                            tarpack.entry_header(name, len(content)) + content + tarpack.pad(len(content))
                        )
                    else:
                        blobs += 1
                        size = content.stat().st_size
                        out.write(tarpack.entry_header(name, size))
                        with content.open("rb") as source:
                            while chunk := source.read(_CHUNK):
                                out.write(chunk)
                        out.write(tarpack.pad(size))
                out.write(tarpack.END)
            raw.flush()
            os.fsync(raw.fileno())
        Path(staging).replace(output)
    except OSError as exc:
        Path(staging).unlink(missing_ok=True)
        raise MlociError(
            f"cannot write {output}: {exc.strerror or exc}", hint="nothing was written there"
        ) from exc
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return Digest("sha256", sink.hasher.hexdigest()), sink.size, blobs


# --- import ----------------------------------------------------------------------------------


def _target(text: str | None) -> tuple[str | None, str]:
    """(registry or None for the local store, namespace) from ``REGISTRY[/NAMESPACE]``."""
    if text is None:
        return None, ""
    host, _, namespace = text.strip("/").partition("/")
    if not ("." in host or ":" in host or host == "localhost"):
        raise UsageError(
            f"{text!r} does not start with a registry host",
            hint="name REGISTRY[/NAMESPACE], e.g. registry.example.com/ml; omit it to import into the local store",
        )
    if namespace and not is_valid_repository(namespace):
        raise UsageError(f"invalid namespace {namespace!r}")
    return host, namespace


def import_archive(
    archive: Path, target: str | None = None, *, session: Session | None = None
) -> ImportResult:
    """Copy every artifact of ``archive`` (with what refers to it) into the local store or ``target``."""
    registry, namespace = _target(target)
    source = ArchiveStore(archive)
    result = ImportResult(archive)
    try:
        entries = source.entries()
        children = _children(source, entries)
        with scoped(session) as active:
            destination_store = active.store(Reference(registry, "import"))
            for entry in entries:
                name = source.ref_name(entry)
                tag = name.rpartition(":")[2] if name else None
                digest = Digest.parse(str(entry.get("digest")))
                if tag is not None and (is_fallback_tag(tag) or tag.startswith(("sha256-", "sha512-"))):
                    continue  # referrer indexes and cosign tags travel with their subject
                if tag is None and (digest in children or _is_referrer(source, digest)):
                    continue  # copied with the index that lists it, or with its subject
                repository = source.repository_of(entry)
                if repository is None:
                    if not namespace:
                        raise UsageError(
                            f"the archive entry {name or digest} names no repository",
                            hint="name one: mloci import ARCHIVE REGISTRY/REPOSITORY",
                        )
                    full = namespace
                else:
                    full = f"{namespace}/{repository}" if namespace else repository
                src = Reference(None, repository or "archive", tag=tag)
                dst = Reference(registry, full, tag=tag)
                copier = Copier(source, src, destination_store, dst, concurrency=active.options.concurrency)
                copier.manifest(digest, tag=tag)
                copier.referrers(digest)
                result.artifacts.append(ArchivedArtifact(str(dst.pinned(digest)), digest))
                result.referrers += copier.stats.referrers
                result.blobs_copied += copier.stats.blobs_copied
                result.blobs_present += copier.stats.blobs_present
                result.bytes_copied += copier.stats.bytes_copied
    finally:
        source.close()
    return result


def _is_referrer(store: ArchiveStore, digest: Digest) -> bool:
    try:
        _, data = store.fetch_manifest(Reference(None, "archive", digest=digest))
        return isinstance(json.loads(data).get("subject"), dict)
    except (MlociError, ValueError, AttributeError):
        return False


def _children(store: ArchiveStore, entries: list[dict[str, Any]]) -> set[Digest]:
    """Manifests listed by the archive's image indexes (copied with their index, not on their own)."""
    found: set[Digest] = set()
    for entry in entries:
        if entry.get("mediaType") not in mediatype.INDEX_TYPES:
            continue
        _, data = store.fetch_manifest(
            Reference(None, "archive", digest=Digest.parse(str(entry.get("digest"))))
        )
        for child in json.loads(data).get("manifests") or []:
            with contextlib.suppress(MlociError, TypeError, KeyError):
                found.add(Digest.parse(child["digest"]))
    return found
