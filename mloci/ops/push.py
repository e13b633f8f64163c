"""Push: pack a bundle and upload it, skipping what the store already has, refusing to rewrite versions."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mloci import leftovers, settings
from mloci.bundle import tarpack
from mloci.bundle.digests import default_cache
from mloci.bundle.git import git_state
from mloci.bundle.load import Bundle, check_checksums, load_bundle
from mloci.bundle.manifest import MANIFEST_FILENAME
from mloci.bundle.pack import PackedArtifact, pack, version_tag, with_git
from mloci.errors import ConflictError, MlociError, NotAManifestError, NotFoundError, UsageError
from mloci.ops._parallel import CancelToken, run_all
from mloci.ops.progress import Silent, TransferListener
from mloci.store import IngestsFiles, RepairsBlobs, Session, Store, StreamsUploads, scoped
from mloci.store.base import BlobOutcome
from mloci.store.registry.sessions import file_subject
from mloci.types import annotations as ann
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
    blobs_mounted: int = 0  # linked by the registry from another repository: nothing sent

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "tags": list(self.tags),
            "blobsUploaded": self.blobs_uploaded,
            "blobsSkipped": self.blobs_skipped,
            "blobsMounted": self.blobs_mounted,
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
        except (NotFoundError, NotAManifestError):  # free, or broken (naming a blob): write it
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


@dataclass(frozen=True)
class BlobCounts:
    """What an upload did with each distinct blob: sent it, had it mounted, or found it present."""

    uploaded: int
    mounted: int
    present: int
    bytes_sent: int


def upload_blobs(
    store: Store,
    repository: str,
    blobs: Sequence[Blob],
    *,
    concurrency: int = 4,
    listener: TransferListener | None = None,
    already_sent: Collection[Digest] = (),
) -> BlobCounts:
    """Upload every blob the store lacks (checked with HEAD first) and count what really happened.

    ``already_sent`` are blobs this push stored while hashing them (eager upload, local ingest);
    they count as uploaded.
    """
    listener = listener or Silent()
    unique = list({b.descriptor.digest: b for b in blobs}.values())

    def one(blob: Blob, token: CancelToken) -> BlobOutcome:
        descriptor = blob.descriptor
        if descriptor.digest in already_sent:
            return "uploaded"
        key = str(descriptor.digest)
        label = descriptor.annotation(ann.TITLE) or descriptor.digest.short
        listener.started(key, label, descriptor.size)
        if store.has_blob(repository, descriptor.digest):
            listener.finished(key, skipped=True)
            return "present"

        def progress(n: int) -> None:
            token.check()
            listener.advance(key, n)

        outcome = store.push_blob(repository, blob, progress=progress)
        listener.finished(key, skipped=outcome != "uploaded")
        return outcome

    done = run_all(one, unique, concurrency)
    return BlobCounts(
        uploaded=done.count("uploaded"),
        mounted=done.count("mounted"),
        present=done.count("present"),
        bytes_sent=sum(b.descriptor.size for b, o in zip(unique, done, strict=True) if o == "uploaded"),
    )


class EagerUploader:
    """Hashes a large file while already uploading it, so a first push costs one pass, not two.

    When the hash is done the registry is asked whether it has the blob: if so the upload is
    abandoned (re-pushes from a fresh CI machine still skip existing blobs); if not, the upload
    is committed under the digest, which the registry verifies.
    """

    MIN_SIZE = 32 << 20  # below this, hashing first costs less than an extra upload session

    def __init__(
        self,
        store: Store,
        streams: StreamsUploads,
        repository: str,
        listener: TransferListener,
        token: CancelToken,
    ) -> None:
        self.store = store
        self.streams = streams
        self.repository = repository
        self.listener = listener
        self.token = token
        self.sent: set[Digest] = set()

    def __call__(self, path: Path, label: str) -> tuple[Digest, int]:
        size = path.stat().st_size
        upload = (
            self.streams.begin_stream(self.repository, file_subject(path)) if size >= self.MIN_SIZE else None
        )
        if upload is None:
            return hash_file(path, self.token.check)
        key = f"eager:{path}"
        self.listener.started(key, label, size)
        stop = CancelToken()
        failure: list[BaseException] = []

        def progress(n: int) -> None:
            stop.check()
            self.token.check()
            self.listener.advance(key, n)

        def send() -> None:
            try:
                upload.send(path, size, progress)
            except BaseException as exc:
                failure.append(exc)

        sender = threading.Thread(target=send, name="mloci-eager-upload")
        sender.start()
        try:
            digest, hashed = hash_file(path, self.token.check)
            exists = self.store.has_blob(self.repository, digest)
            if exists:
                stop.cancel()
        except BaseException:
            stop.cancel()
            sender.join()
            upload.abort()
            raise
        sender.join()
        if exists or failure:
            # Present already, or the stream broke: the regular upload path (with resume) decides.
            upload.abort()
            self.listener.finished(key, skipped=exists)
            return digest, hashed
        try:
            upload.finish(digest)
        except MlociError:
            # E.g. the file changed while it was read twice: the regular upload decides (and verifies).
            upload.abort()
            self.listener.finished(key, skipped=False)
            return digest, hashed
        self.sent.add(digest)
        self.listener.finished(key, skipped=False)
        return digest, hashed


def file_digests(
    bundle: Bundle, hasher: Callable[[Path, str], tuple[Digest, int]], concurrency: int, token: CancelToken
) -> dict[str, tuple[Digest, int]]:
    """(digest, size) of every file packed as its own layer, computed ``concurrency`` at a time.

    Files packed into tar layers are hashed (once) when their layer is built, not here.
    """
    packed = tarpack.plan(bundle.files, bundle.manifest.pack).packed_paths
    files = [f for f in bundle.files if f.path != MANIFEST_FILENAME and f.path not in packed]
    results = run_all(lambda f, _: hasher(f.source, f.path), files, concurrency, token)
    return {f.path: result for f, result in zip(files, results, strict=True)}


def push_packed(
    packed: PackedArtifact,
    target: Reference,
    *,
    store: Store,
    extra_tags: Sequence[str] = (),
    force: bool = False,
    concurrency: int = 4,
    listener: TransferListener | None = None,
    already_sent: Collection[Digest] = (),
) -> PushResult:
    tags = list(dict.fromkeys([*packed.tags, *extra_tags]))
    digest = packed.digest
    pending = check_tags(store, target, tags, digest, force=force)
    annotations = dict(packed.manifest.annotations or {})
    pinned = target.with_tag(tags[0]).pinned(digest)
    if not pending:
        if not isinstance(store, RepairsBlobs):
            return PushResult(pinned, digest, tuple(tags), 0, len(packed.blobs), 0, True, annotations)
        # Listed already; but a blob of the local store may have been damaged since: a push replaces
        # it (ingest did, for files it copied; upload_blobs does for the others).
        counts = upload_blobs(
            store,
            target.repository,
            packed.blobs,
            concurrency=concurrency,
            listener=listener,
            already_sent=already_sent,
        )
        uploaded = counts.uploaded
        if not store.blob_intact(digest):
            uploaded += 1
            store.push_manifest(
                target.with_tag(tags[0]).with_digest(None), packed.manifest_bytes, mediatype.OCI_MANIFEST
            )
        return PushResult(
            pinned,
            digest,
            tuple(tags),
            uploaded,
            counts.present,
            counts.bytes_sent,
            not uploaded,
            annotations,
        )
    counts = upload_blobs(
        store,
        target.repository,
        packed.blobs,
        concurrency=concurrency,
        listener=listener,
        already_sent=already_sent,
    )
    for tag in pending:
        store.push_manifest(
            target.with_tag(tag).with_digest(None), packed.manifest_bytes, mediatype.OCI_MANIFEST
        )
    return PushResult(
        pinned,
        digest,
        tuple(tags),
        counts.uploaded,
        counts.present,
        counts.bytes_sent,
        False,
        annotations,
        blobs_mounted=counts.mounted,
    )


def target_for(name: str, target: str | None) -> tuple[Reference, list[str]]:
    """Where to push: ``target`` when given (its tag becomes an extra tag), else the bundle name under the default."""
    if target is None:
        return Reference.parse(name, default_registry=settings.default_registry()), []
    ref = Reference.parse(target, default_registry=settings.default_registry())
    if ref.digest is not None:
        raise UsageError(f"cannot push to a digest ({target}); name a repository, optionally with a tag")
    return ref.with_tag(None), [ref.tag] if ref.tag else []


Format = Literal["modelpack", "image-volume"]


def push(
    path: Path,
    target: str | None = None,
    *,
    format: Format = "modelpack",
    session: Session | None = None,
    extra_tags: Sequence[str] = (),
    force: bool = False,
    listener: TransferListener | None = None,
    pack_overrides: Sequence[tuple[str, str]] = (),
) -> PushResult:
    """Validate, pack and push the bundle at ``path``.

    ``format`` is ``modelpack`` (one layer per file, the default) or ``image-volume`` (an image
    with the files under ``/models/<name>``, mountable as a Kubernetes image volume).
    """
    for name in extra_tags:
        if not is_valid_tag(name):
            raise UsageError(f"invalid tag {name!r}")
    if format == "image-volume":
        from mloci.ops.image_volume import push_image_volume  # noqa: PLC0415  (imports this module)

        return push_image_volume(
            path, target, session=session, extra_tags=extra_tags, force=force, listener=listener
        )
    if format != "modelpack":
        raise UsageError(f"unknown format {format!r}", hint="use modelpack or image-volume")
    return push_bundle(
        path,
        target,
        session=session,
        extra_tags=extra_tags,
        force=force,
        listener=listener,
        pack_overrides=pack_overrides,
    )


def push_bundle(
    path: Path,
    target: str | None = None,
    *,
    session: Session | None = None,
    extra_tags: Sequence[str] = (),
    force: bool = False,
    listener: TransferListener | None = None,
    pack_overrides: Sequence[tuple[str, str]] = (),
) -> PushResult:
    """Validate, pack and push the bundle at ``path``; ``target`` defaults to the local store or $MLOCI_REGISTRY.

    ``pack_overrides`` are (directory, "tar" or "raw") choices merged into the manifest's ``pack`` section.
    """
    # Checksum files are compared with the digests computed below: every file is read once.
    bundle = with_git(load_bundle(path, checksums=False), git_state(path))
    if pack_overrides:
        manifest = tarpack.with_overrides(bundle.manifest, pack_overrides)
        bundle = Bundle(
            root=bundle.root, manifest=manifest, files=bundle.files, manifest_bytes=bundle.manifest_bytes
        )
    ref, target_tags = target_for(bundle.manifest.name, target)
    for tag in extra_tags:
        if not is_valid_tag(tag):
            raise UsageError(f"invalid tag {tag!r}")
    scope = scoped(session)
    store = scope.session.store(ref)
    concurrency = scope.session.options.concurrency
    cache = default_cache(settings.home())
    listener = listener or Silent()
    token = CancelToken()
    try:
        # Unchanged files are not re-read (digest cache). The local store copies each file while
        # hashing it; a registry receives large new files while they are hashed. Either way a
        # push reads every byte once.
        eager: EagerUploader | None = None
        inner: Callable[[Path, str], tuple[Digest, int]]
        ingested: set[Digest] = set()  # new in the local store: stored while hashed
        if isinstance(store, IngestsFiles):
            ingest = store.ingest_file
            inner = lambda path, _: ingest(path, token.check, added=ingested)  # noqa: E731
        elif isinstance(store, StreamsUploads) and not _version_exists(store, ref, bundle):
            eager = EagerUploader(store, store, ref.repository, listener, token)
            inner = eager
        else:
            inner = lambda path, _: hash_file(path, token.check)  # noqa: E731
        listener.begin(sum(f.size for f in bundle.files), len(bundle.files))
        # Tar layers (directories of many small files) are written once, here, and uploaded from there.
        (settings.home() / "tmp").mkdir(parents=True, exist_ok=True)
        # Named for its owner and held, so a push killed with -9 leaves a spool the next push sweeps.
        leftovers.sweep(settings.home() / "tmp", ("pack-",))
        spool = Path(tempfile.mkdtemp(prefix=leftovers.owned_prefix("pack-"), dir=settings.home() / "tmp"))
        spool_lock = leftovers.hold_path(spool)
        tar_cache = tarpack.TarCache(
            None
            if os.environ.get("MLOCI_NO_DIGEST_CACHE")
            else settings.home() / "cache" / "tar-layers.sqlite"
        )
        try:
            digests = file_digests(bundle, cache.hasher(inner), concurrency, token)
            check_checksums(bundle, digests)
            packed = pack(bundle, digests=digests, spool=spool, tar_cache=tar_cache)
            return push_packed(
                packed,
                ref,
                store=store,
                extra_tags=[*target_tags, *extra_tags],
                force=force,
                concurrency=concurrency,
                listener=listener,
                already_sent=eager.sent if eager else ingested,
            )
        finally:
            shutil.rmtree(spool, ignore_errors=True)
            if spool_lock is not None:
                os.close(spool_lock)
            tar_cache.close()
            listener.end()
    finally:
        cache.close()
        scope.close()


def _version_exists(store: Store, ref: Reference, bundle: Bundle) -> bool:
    """Whether the version tag is taken: then this push is a no-op or a conflict, so nothing is sent early."""
    try:
        store.resolve(ref.with_tag(version_tag(bundle.manifest.version)))
    except NotFoundError:
        return False
    return True
