"""Copy an artifact between repositories, registries and the local store, digest preserved bit for bit.

Manifests are copied as the exact bytes read (never re-serialized); blobs the destination
lacks are mounted when both sides are repositories of one registry, otherwise streamed from
source to destination without touching disk. With referrers, everything attached to the
artifact (signatures, SBOMs, promotion records, cosign's ``.sig``/``.att``/``.sbom`` tags)
travels too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from mloci.errors import NotFoundError, UsageError
from mloci.ops._parallel import run_all
from mloci.ops.referrers import COSIGN_SUFFIXES, list_referrers, register
from mloci.store import MountsBlobs, Session, Store, scoped
from mloci.store.stream import ChunkReader
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Index, Manifest
from mloci.types.reference import Reference


@dataclass
class CopyStats:
    manifests: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    referrers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CopyResult:
    source: Reference
    destination: Reference
    digest: Digest
    stats: CopyStats

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.destination),
            "source": str(self.source),
            "digest": str(self.digest),
            "manifests": self.stats.manifests,
            "blobsCopied": self.stats.blobs_copied,
            "blobsMounted": self.stats.blobs_mounted,
            "blobsPresent": self.stats.blobs_present,
            "bytesCopied": self.stats.bytes_copied,
            "referrers": self.stats.referrers,
        }


class Copier:
    """Copies manifests (recursively) and their blobs from one store/repository to another."""

    def __init__(
        self, source: Store, src: Reference, destination: Store, dst: Reference, *, concurrency: int = 4
    ) -> None:
        self.source = source
        self.src = src
        self.destination = destination
        self.dst = dst
        self.concurrency = concurrency
        self.stats = CopyStats()
        mountable = isinstance(destination, MountsBlobs) and source.location == destination.location
        self._mount_from = src.repository if mountable and src.repository != dst.repository else None

    def blob(self, descriptor: Descriptor) -> None:
        if self.destination.has_blob(self.dst.repository, descriptor.digest):
            self.stats.blobs_present += 1
            return
        if (
            self._mount_from
            and isinstance(self.destination, MountsBlobs)
            and self.destination.mount_blob(self.dst.repository, descriptor.digest, self._mount_from)
        ):
            self.stats.blobs_mounted += 1
            return

        def open_source() -> BinaryIO:
            return cast(BinaryIO, ChunkReader(self.source.open_blob(self.src.repository, descriptor)))

        stream = Blob(descriptor, opener=open_source)
        outcome = self.destination.push_blob(self.dst.repository, stream)
        if outcome == "uploaded":
            self.stats.blobs_copied += 1
            self.stats.bytes_copied += descriptor.size
        elif outcome == "mounted":  # the registry knew the blob from another repository
            self.stats.blobs_mounted += 1
        else:
            self.stats.blobs_present += 1

    def manifest(self, digest: Digest, tag: str | None = None) -> Descriptor:
        """Copy the manifest ``digest`` (children and blobs first), tagging it ``tag`` at the destination."""
        descriptor, data = self.source.fetch_manifest(self.src.with_tag(None).with_digest(digest))
        if descriptor.media_type in mediatype.INDEX_TYPES:
            for child in Index.from_json(data).manifests:
                self.manifest(child.digest)
        else:
            image = Manifest.from_json(data)
            wanted = list({d.digest: d for d in [image.config, *image.layers]}.values())
            run_all(lambda d, _: self.blob(d), wanted, self.concurrency)
        target = self.dst.with_tag(tag).with_digest(None if tag else digest)
        self.destination.push_manifest(target, data, descriptor.media_type)
        self.stats.manifests += 1
        return descriptor

    def referrers(self, subject: Digest) -> None:
        """Copy everything attached to ``subject`` (recursively: signatures of SBOMs too)."""
        for entry in list_referrers(self.source, self.src, subject):
            self.manifest(entry.digest)
            register(self.destination, self.dst, subject, entry)
            self.stats.referrers.append(str(entry.digest))
            self.referrers(entry.digest)
        for suffix in COSIGN_SUFFIXES:
            tag = f"{subject.algorithm}-{subject.encoded}{suffix}"
            try:
                found = self.source.resolve(self.src.with_digest(None).with_tag(tag))
            except NotFoundError:
                continue
            self.manifest(found.digest, tag=tag)
            self.stats.referrers.append(f"{tag}@{found.digest}")


def copy(
    source: Reference,
    destination: Reference,
    *,
    session: Session | None = None,
    with_referrers: bool = False,
) -> CopyResult:
    """Copy ``source`` to ``destination`` (whose tag defaults to the source's)."""
    with scoped(session) as active:
        src_store = active.store(source)
        dst_store = active.store(destination)
        descriptor = src_store.resolve(source)
        if destination.digest is not None and destination.digest != descriptor.digest:
            # A copy never changes bytes, so a destination digest can only restate the source's.
            raise UsageError(
                f"{source} is {descriptor.digest}, not the {destination.digest} the destination names",
                hint="name the destination without @digest",
            )
        tag = destination.tag or source.tag
        copier = Copier(src_store, source, dst_store, destination, concurrency=active.options.concurrency)
        copier.manifest(descriptor.digest, tag=tag)
        if with_referrers:
            copier.referrers(descriptor.digest)
        pinned = destination.with_tag(tag).pinned(descriptor.digest)
        return CopyResult(source.pinned(descriptor.digest), pinned, descriptor.digest, copier.stats)
