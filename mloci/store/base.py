"""The one storage interface every backend implements, and the digest check they all share."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from mloci.errors import IntegrityError, NotAManifestError
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import NOT_A_MANIFEST_HINT, Descriptor
from mloci.types.reference import Reference

# Called with the number of bytes just transferred; progress bars hang off this.
Progress = Callable[[int], None]

# What push_blob did: sent the bytes, had the registry link them from another repository, or
# found them already there. Transfer statistics count these, never guess.
BlobOutcome = Literal["uploaded", "mounted", "present"]

# Manifests are small by spec (registries cap them at 4 MiB); anything larger is refused unread.
MAX_MANIFEST_SIZE = 4 << 20


class Store(Protocol):
    """A place that holds OCI content, addressed by repository: a registry or a local OCI layout."""

    @property
    def location(self) -> str:
        """Human-readable name of the store, for messages."""
        ...

    def resolve(self, ref: Reference) -> Descriptor:
        """The descriptor (media type, digest, size) of the manifest ``ref`` names."""
        ...

    def fetch_manifest(self, ref: Reference) -> tuple[Descriptor, bytes]:
        """The manifest's exact bytes, verified against the digest when ``ref`` is pinned."""
        ...

    def push_manifest(self, ref: Reference, data: bytes, media_type: str) -> Descriptor:
        """Store ``data`` as a manifest under ``ref``'s tag (or just by digest when it has none)."""
        ...

    def has_blob(self, repository: str, digest: Digest) -> bool: ...

    def push_blob(self, repository: str, blob: Blob, progress: Progress | None = None) -> BlobOutcome:
        """Store ``blob`` unless it is there already; say what it took (see :data:`BlobOutcome`)."""
        ...

    def open_blob(self, repository: str, descriptor: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        """Chunks of the blob, verified: the iterator raises IntegrityError instead of ending on bad content."""
        ...

    def list_tags(self, repository: str) -> list[str]: ...

    def delete_manifest(self, repository: str, digest: Digest) -> None:
        """Delete a manifest (and so every tag naming it); UnsupportedError where deletes are disabled.

        Tags are gone at once; the local store may serve the bytes by digest until it collects garbage.
        """
        ...

    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """Manifests whose ``subject`` is ``digest``, from the referrers API; None where there is none."""
        ...

    def close(self) -> None: ...


def manifest_media_type(data: bytes, what: str) -> str:
    """The media type of ``data`` when it is an image manifest or index; IntegrityError otherwise.

    The one check that keeps a layer or config blob from being tagged, signed, promoted,
    attached to or parsed as a manifest, whichever store it came from.
    """
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        document = None
    if isinstance(document, dict) and document.get("schemaVersion") == 2:
        declared = document.get("mediaType")
        if declared in mediatype.MANIFEST_TYPES:
            return str(declared)
        if declared is None and isinstance(document.get("manifests"), list):
            return mediatype.OCI_INDEX
        if declared is None and isinstance(document.get("layers"), list):
            return mediatype.OCI_MANIFEST
    raise NotAManifestError(
        f"{what} is not a manifest (a layer, config or other blob)", hint=NOT_A_MANIFEST_HINT
    )


# -- optional capabilities ----------------------------------------------------------------------
# An adapter declares a capability by having the method; use cases ask with isinstance() on
# these protocols, never on an adapter class, so a new backend is one adapter.


@runtime_checkable
class ListsRepositories(Protocol):
    def repositories(self) -> list[str]:
        """Every repository the store holds (the registry's catalog); UnsupportedError where it has none."""
        ...


@runtime_checkable
class MountsBlobs(Protocol):
    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Make a blob of ``from_repository`` (same store) available in ``repository``; False when refused."""
        ...


@runtime_checkable
class IngestsFiles(Protocol):
    def ingest_file(
        self, path: Path, check: Callable[[], None] | None = None, *, added: set[Digest] | None = None
    ) -> tuple[Digest, int]:
        """Store a local file as a blob while hashing it (one read); return its digest and size.

        The digest goes into ``added`` when the store did not hold the blob before (push statistics).
        """
        ...


@runtime_checkable
class CollectsGarbage(Protocol):
    def collect_garbage(self, *, grace_seconds: float) -> int:
        """Remove blobs no manifest references (older than ``grace_seconds``); return how many."""
        ...

    def sweep_leftovers(self, *, grace_seconds: float | None = None) -> int:
        """Remove temporary files that killed processes left (see :mod:`mloci.leftovers`); return how many."""
        ...


@runtime_checkable
class RepairsBlobs(Protocol):
    """Blobs kept as files that can be damaged in place (the local store): a push checks and replaces them."""

    def blob_intact(self, digest: Digest, *, rehash: bool = False) -> bool:
        """Whether the blob is present and matches its digest (``rehash``: hash it even if checked before)."""
        ...

    def blob_path(self, digest: Digest) -> Path:
        """The file that holds (or would hold) the blob."""
        ...

    def blob_files(self) -> Iterator[tuple[Digest, Path]]:
        """Every blob file, with the digest its name claims (what ``mloci fsck`` checks)."""
        ...

    def replace_blob(self, descriptor: Descriptor, chunks: Iterator[bytes]) -> None:
        """Write the blob from ``chunks`` (verified on the way) over whatever the store holds for it."""
        ...

    def listed(self) -> list[tuple[Descriptor, str]]:
        """Every manifest the store lists, with its repository."""
        ...

    def resolve(self, ref: Reference) -> Descriptor: ...


class Upload(Protocol):
    """A blob upload started before its digest is known (see :class:`StreamsUploads`)."""

    def send(self, path: Path, size: int, progress: Progress | None) -> None: ...

    def finish(self, digest: Digest) -> None: ...

    def abort(self) -> None: ...


@runtime_checkable
class StreamsUploads(Protocol):
    def begin_stream(self, repository: str, subject: str | None = None) -> Upload | None:
        """Start an upload whose digest is given at the end; None when the store needs it up front.

        ``subject`` names the content (e.g. a file's identity): an upload of that subject a
        killed process left behind may be continued instead of started over."""
        ...


def verify_bytes(data: bytes, expected: Descriptor | Digest, what: str) -> None:
    digest = expected.digest if isinstance(expected, Descriptor) else expected
    if isinstance(expected, Descriptor) and len(data) != expected.size:
        raise IntegrityError(f"{what}: size {len(data)} differs from the expected {expected.size}")
    hasher = digest.hasher()
    hasher.update(data)
    if hasher.hexdigest() != digest.encoded:
        raise IntegrityError(f"{what}: content does not match digest {digest}")


def verified(chunks: Iterable[bytes], descriptor: Descriptor, what: str) -> Iterator[bytes]:
    """Pass ``chunks`` through, hashing as they go; raise before the end if size or digest is wrong.

    Consumers must treat data as provisional until the iterator is exhausted: the last
    step is the check, and a mismatch raises instead of finishing.
    """
    hasher = descriptor.digest.hasher()
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > descriptor.size:
            raise IntegrityError(f"{what}: more than the expected {descriptor.size} bytes")
        hasher.update(chunk)
        yield chunk
    if seen != descriptor.size:
        raise IntegrityError(f"{what}: {seen} bytes instead of the expected {descriptor.size}")
    if hasher.hexdigest() != descriptor.digest.encoded:
        raise IntegrityError(f"{what}: content does not match digest {descriptor.digest}")


# Metadata documents (configs, bundle manifests, records, payloads) are read into memory; larger is refused.
MAX_METADATA_SIZE = 4 << 20


def read_small_blob(
    store: Store, repository: str, descriptor: Descriptor, *, limit: int = MAX_METADATA_SIZE
) -> bytes:
    """A small blob's verified bytes, read whole; IntegrityError when it is larger than ``limit``."""
    if descriptor.size > limit:
        raise IntegrityError(
            f"blob {descriptor.digest} ({descriptor.media_type}) is {descriptor.size} bytes, "
            f"more than the {limit} a metadata document may have"
        )
    with store.open_blob(repository, descriptor) as chunks:
        return b"".join(chunks)
