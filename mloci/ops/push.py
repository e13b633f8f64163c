"""Push: pack a bundle and upload it, skipping what the store already has, refusing to rewrite versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloci import settings
from mloci.bundle.digests import default_cache
from mloci.bundle.git import git_state
from mloci.bundle.load import load_bundle
from mloci.bundle.pack import PackedArtifact, pack, with_git
from mloci.errors import ConflictError, NotFoundError, UsageError
from mloci.ops._parallel import CancelToken, run_all
from mloci.ops.progress import Silent, TransferListener
from mloci.store import LayoutStore, Store, StoreOptions, open_store
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest, hash_file
from mloci.types.reference import Reference, is_valid_tag


@dataclass(frozen=True)
class PushResult:
    reference: Reference  # name:version@digest
    digest: Digest
    tags: tuple[str, ...]
    blobs_uploaded: int
    blobs_skipped: int
    bytes_uploaded: int
    unchanged: bool  # every tag already named this exact manifest: nothing was written
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "tags": list(self.tags),
            "blobsUploaded": self.blobs_uploaded,
            "blobsSkipped": self.blobs_skipped,
            "bytesUploaded": self.bytes_uploaded,
            "unchanged": self.unchanged,
            "annotations": self.annotations,
        }


def check_tags(
    store: Store, ref: Reference, tags: Sequence[str], digest: Digest, *, force: bool
) -> list[str]:
    """Tags that still need writing; raise ConflictError when one already names other content."""
    pending = []
    for tag in tags:
        try:
            existing = store.resolve(ref.with_tag(tag).with_digest(None)).digest
        except NotFoundError:
            pending.append(tag)
            continue
        if existing == digest:
            continue
        if not force:
            raise ConflictError(
                f"{ref.name}:{tag} already exists with different content ({existing}); published versions are "
                "immutable",
                hint="bump the version, or pass --force to overwrite the tag",
            )
        pending.append(tag)
    return pending


def upload_blobs(
    store: Store,
    repository: str,
    blobs: Sequence[Blob],
    *,
    concurrency: int = 4,
    listener: TransferListener | None = None,
) -> tuple[int, int, int]:
    """Upload every blob the store lacks (checked with HEAD first); return (uploaded, skipped, bytes)."""
    listener = listener or Silent()
    unique = list({b.descriptor.digest: b for b in blobs}.values())
    listener.begin(sum(b.descriptor.size for b in unique), len(unique))

    def one(blob: Blob, token: CancelToken) -> bool:
        descriptor = blob.descriptor
        label = descriptor.annotation("org.opencontainers.image.title") or descriptor.digest.short
        listener.blob_started(descriptor, label)
        if store.has_blob(repository, descriptor.digest):
            listener.blob_finished(descriptor, skipped=True)
            return False

        def progress(n: int) -> None:
            token.check()
            listener.advance(descriptor, n)

        store.push_blob(repository, blob, progress=progress)
        listener.blob_finished(descriptor, skipped=False)
        return True

    try:
        done = run_all(one, unique, concurrency)
    finally:
        listener.end()
    sent = [b.descriptor.size for b, ok in zip(unique, done, strict=True) if ok]
    return len(sent), len(unique) - len(sent), sum(sent)


def push_packed(
    packed: PackedArtifact,
    target: Reference,
    *,
    store: Store,
    extra_tags: Sequence[str] = (),
    force: bool = False,
    concurrency: int = 4,
    listener: TransferListener | None = None,
) -> PushResult:
    tags = list(dict.fromkeys([*packed.tags, *extra_tags]))
    digest = packed.digest
    pending = check_tags(store, target, tags, digest, force=force)
    annotations = dict(packed.manifest.annotations or {})
    pinned = target.with_tag(tags[0]).pinned(digest)
    if not pending:
        return PushResult(pinned, digest, tuple(tags), 0, len(packed.blobs), 0, True, annotations)
    uploaded, skipped, nbytes = upload_blobs(
        store, target.repository, packed.blobs, concurrency=concurrency, listener=listener
    )
    for tag in pending:
        store.push_manifest(
            target.with_tag(tag).with_digest(None), packed.manifest_bytes, mediatype.OCI_MANIFEST
        )
    return PushResult(pinned, digest, tuple(tags), uploaded, skipped, nbytes, False, annotations)


def target_for(name: str, target: str | None) -> tuple[Reference, list[str]]:
    """Where to push: ``target`` when given (its tag becomes an extra tag), else the bundle name under the default."""
    if target is None:
        return Reference.parse(name, default_registry=settings.default_registry()), []
    ref = Reference.parse(target, default_registry=settings.default_registry())
    if ref.digest is not None:
        raise UsageError(f"cannot push to a digest ({target}); name a repository, optionally with a tag")
    return ref.with_tag(None), [ref.tag] if ref.tag else []


def push_bundle(
    path: Path,
    target: str | None = None,
    *,
    options: StoreOptions | None = None,
    extra_tags: Sequence[str] = (),
    force: bool = False,
    listener: TransferListener | None = None,
) -> PushResult:
    """Validate, pack and push the bundle at ``path``; ``target`` defaults to the local store or $MLOCI_REGISTRY."""
    options = options or StoreOptions()
    bundle = with_git(load_bundle(path), git_state(path))
    ref, target_tags = target_for(bundle.manifest.name, target)
    for tag in extra_tags:
        if not is_valid_tag(tag):
            raise UsageError(f"invalid tag {tag!r}")
    store = open_store(ref, options)
    cache = default_cache(settings.home())
    try:
        # Unchanged files are not re-read (digest cache); the local store copies each file while
        # hashing it, so a local push reads every byte once.
        hasher = cache.hasher(store.ingest_file if isinstance(store, LayoutStore) else hash_file)
        packed = pack(bundle, hasher=hasher)
        return push_packed(
            packed,
            ref,
            store=store,
            extra_tags=[*target_tags, *extra_tags],
            force=force,
            concurrency=options.concurrency,
            listener=listener,
        )
    finally:
        cache.close()
        store.close()
