"""``export`` and ``import``: artifacts as one OCI image-layout tar, for air-gapped transfer.

``export`` collects each artifact (and, with referrers, its signatures, SBOMs, attestations and
promotion records) and streams every blob from its store straight into a deterministic tar
(nothing is staged, so an export needs the archive's space only):
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

from mloci.bundle import tarpack
from mloci.errors import IntegrityError, MlociError, NotFoundError, UnsupportedError, UsageError
from mloci.ops.referrers import is_fallback_tag
from mloci.ops.transfer import Copier
from mloci.store import Session, scoped
from mloci.store.archive import ArchiveReference, ArchiveStore
from mloci.store.base import BlobOutcome, Progress
from mloci.store.layout import LAYOUT_VERSION
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, canonical_json
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


def export(
    references: Sequence[Reference],
    output: Path,
    *,
    with_referrers: bool = False,
    compress: bool = False,
    session: Session | None = None,
) -> ExportResult:
    """Write ``references`` (and their referrers) into the OCI image-layout tar ``output``.

    Nothing is staged: manifests are collected in memory, and each blob streams from its store
    straight into the archive (verified on the way), so an export needs the archive's space only.
    """
    if not references:
        raise UsageError("name at least one artifact to export")
    if output.is_dir():
        raise UsageError(f"{output} is a directory; name the archive file, e.g. {output / 'models.tar'}")
    with scoped(session) as active:
        collector = _Collector()
        artifacts: list[ArchivedArtifact] = []
        referrers: list[str] = []
        for ref in references:
            store = active.store(ref)
            descriptor = store.resolve(ref)
            repository = ref.repository
            if isinstance(ref, ArchiveReference) and not ref.name_given:
                repository = _archive_repository(store, ref) or repository
            destination = Reference(None, repository, tag=ref.tag)
            copier = Copier(store, ref, collector, destination, concurrency=active.options.concurrency)
            copier.manifest(descriptor.digest, tag=ref.tag)
            if with_referrers:
                copier.referrers(descriptor.digest)
                referrers += copier.stats.referrers
            artifacts.append(ArchivedArtifact(str(destination.pinned(descriptor.digest)), descriptor.digest))
        digest, size = write_archive(collector, output, compress=compress)
    return ExportResult(output, digest, size, artifacts, referrers, len(collector.blobs))


class _Collector:
    """The destination of an export's copies: remembers manifests (bytes), blobs (where to read them)
    and index entries, the way the local OCI layout would list them, without writing anything."""

    location = "archive being written"

    def __init__(self) -> None:
        self.blobs: dict[Digest, Blob] = {}
        self.entries: list[dict[str, Any]] = []

    def has_blob(self, repository: str, digest: Digest) -> bool:
        return digest in self.blobs

    def push_blob(self, repository: str, blob: Blob, progress: Progress | None = None) -> BlobOutcome:
        if blob.descriptor.digest in self.blobs:
            return "present"
        self.blobs[blob.descriptor.digest] = blob
        return "uploaded"  # read (and verified) when the archive is written

    def push_manifest(self, ref: Reference, data: bytes, media_type: str) -> Descriptor:
        descriptor = Descriptor.of_bytes(media_type, data)
        self.blobs.setdefault(descriptor.digest, Blob(descriptor, data=data))
        entry = descriptor.to_dict()
        with contextlib.suppress(ValueError, AttributeError):
            artifact_type = json.loads(data).get("artifactType")
            if isinstance(artifact_type, str):
                entry["artifactType"] = artifact_type
        untagged = {**entry, "annotations": {ann.REPOSITORY: ref.repository}}
        if ref.tag is not None:
            name = f"{ref.repository}:{ref.tag}"
            self.entries = [e for e in self.entries if _annotation(e, ann.REF_NAME) != name and e != untagged]
            self.entries.append({**entry, "annotations": {ann.REF_NAME: name}})
        elif not any(
            e.get("digest") == entry["digest"] and _repository(e) == ref.repository for e in self.entries
        ):
            self.entries.append(untagged)
        return descriptor

    def resolve(self, ref: Reference) -> Descriptor:
        if ref.digest is not None and ref.digest in self.blobs:
            return self.blobs[ref.digest].descriptor
        name = f"{ref.repository}:{ref.tag}"
        for entry in self.entries:
            if _annotation(entry, ann.REF_NAME) == name:
                return Descriptor.model_validate(entry).model_copy(update={"annotations": None})
        raise NotFoundError(f"{ref} is not in the archive being written")

    def fetch_manifest(self, ref: Reference) -> tuple[Descriptor, bytes]:
        descriptor = self.resolve(ref)
        data = self.blobs[descriptor.digest].data
        if data is None:
            raise NotFoundError(f"{ref} is not a manifest of the archive being written")
        return descriptor, data

    def open_blob(
        self, repository: str, descriptor: Descriptor
    ) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        raise UnsupportedError("an archive being written cannot be read back")

    def list_tags(self, repository: str) -> list[str]:
        names = [_annotation(e, ann.REF_NAME) or "" for e in self.entries]
        return sorted(n.rpartition(":")[2] for n in names if n.rpartition(":")[0] == repository)

    def delete_manifest(self, repository: str, digest: Digest) -> None:
        raise UnsupportedError("an archive being written cannot delete")

    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        return None  # keep referrers with the tag schema, like the local store

    def close(self) -> None:
        pass


def _annotation(entry: dict[str, Any], key: str) -> str | None:
    value = (entry.get("annotations") or {}).get(key)
    return value if isinstance(value, str) else None


def _repository(entry: dict[str, Any]) -> str | None:
    name = _annotation(entry, ann.REF_NAME)
    return name.rpartition(":")[0] if name else _annotation(entry, ann.REPOSITORY)


def _archive_repository(store: Any, ref: ArchiveReference) -> str | None:
    """The repository an archive entry belongs to (re-exporting from an archive keeps names)."""
    if isinstance(store, ArchiveStore) and ref.tag is not None:
        for entry in store.entries():
            name = store.ref_name(entry) or ""
            if name.rpartition(":")[2] == ref.tag:
                return store.repository_of(entry)
    return None


def _index_json(entries: list[dict[str, Any]]) -> bytes:
    ordered = sorted(
        entries,
        key=lambda e: (
            _annotation(e, ann.REF_NAME) or "",
            _annotation(e, ann.REPOSITORY) or "",
            e.get("digest", ""),
        ),
    )
    return canonical_json({"manifests": ordered, "mediaType": mediatype.OCI_INDEX, "schemaVersion": 2})


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


def write_archive(collector: _Collector, output: Path, *, compress: bool) -> tuple[Digest, int]:
    """Write the collected artifacts as a deterministic OCI image-layout tar; return its (digest, size)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    blobs = sorted(
        collector.blobs.values(), key=lambda b: (b.descriptor.digest.algorithm, b.descriptor.digest.encoded)
    )
    try:
        with os.fdopen(fd, "wb") as raw:
            sink = _Hashing(raw)
            with (
                gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=GZIP_LEVEL)
                if compress
                else contextlib.nullcontext(sink)
            ) as out:
                out.write(tarpack.directory_header("blobs/"))
                for algorithm in sorted({b.descriptor.digest.algorithm for b in blobs}):
                    out.write(tarpack.directory_header(f"blobs/{algorithm}/"))
                    for blob in (b for b in blobs if b.descriptor.digest.algorithm == algorithm):
                        _write_blob(out, blob)
                for name, data in (
                    ("index.json", _index_json(collector.entries)),
                    ("oci-layout", LAYOUT_VERSION),
                ):
                    out.write(tarpack.entry_header(name, len(data)) + data + tarpack.pad(len(data)))
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
    return Digest("sha256", sink.hasher.hexdigest()), sink.size


def _write_blob(out: Any, blob: Blob) -> None:
    descriptor = blob.descriptor
    out.write(
        tarpack.entry_header(
            f"blobs/{descriptor.digest.algorithm}/{descriptor.digest.encoded}", descriptor.size
        )
    )
    written = 0
    with blob.open() as source:  # from its store: verified against the digest as it streams
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > descriptor.size:
                break
            out.write(chunk)
    if written != descriptor.size:
        raise IntegrityError(f"blob {descriptor.digest}: {written} bytes instead of {descriptor.size}")
    out.write(tarpack.pad(descriptor.size))


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
