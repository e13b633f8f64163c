"""The embedded local store: one OCI image-layout directory under ``$MLOCI_HOME/oci``.

All repositories share one blob pool. Tagged manifests are ``index.json`` entries whose
``org.opencontainers.image.ref.name`` is ``<repository>:<tag>``, so other tools read
them directly (``skopeo inspect oci:$MLOCI_HOME/oci:churn-model:1.0.0``). Untagged
manifests stay listed, marked with their repository, so they are never orphaned.

Writes go to a temporary file under ``$MLOCI_HOME/tmp`` (same filesystem) and are
renamed into place once verified; ``index.json`` is rewritten under a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mloci import leftovers
from mloci.errors import IntegrityError, MlociError, NotFoundError, UsageError
from mloci.interrupts import deferred
from mloci.store._checked import CheckedBlobs
from mloci.store._copy import fast_copy
from mloci.store.base import (
    MAX_MANIFEST_SIZE,
    BlobOutcome,
    Progress,
    manifest_media_type,
    verified,
    verify_bytes,
)
from mloci.types import annotations as ann
from mloci.types import jsontext, mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest, hash_file
from mloci.types.manifest import Descriptor, Index, check_manifest
from mloci.types.reference import NO_VERSION_HINT, Reference

_CHUNK = 1 << 20
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'
GC_GRACE_SECONDS = 600
# Blobs below this are hashed on every check; above it a stat-keyed record of the last check is kept.
CHECKED_MIN_SIZE = 1 << 20
# Temporary files under $MLOCI_HOME/tmp, named <prefix><pid>-<random> (see mloci.leftovers);
# "tmp" is what versions before owner-named files used for small writes.
TMP_PREFIXES = ("ingest-", "blob-", "write-", "pack-")  # pack-: a push's spool of tar layers
LEGACY_TMP_PREFIXES = ("tmp",)
IMAGE_WORKDIRS = ("image-build", "image-volume")


def _evidence(info: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file is written to or replaced (ctime cannot be set from user space)."""
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _join(worker: threading.Thread) -> None:
    """Wait for ``worker`` even through Ctrl-C: the file it writes is removed only once it is done with it."""
    interrupted: BaseException | None = None
    while worker.is_alive():
        try:
            worker.join()
        except BaseException as exc:
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted


class LayoutStore:
    """A :class:`~mloci.store.Store` over an OCI image-layout directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = home / "oci"
        self._tmp = home / "tmp"
        self._lock_path = home / "locks" / "index.lock"
        self._swept = False
        self._checked = CheckedBlobs(home / "cache" / "checked-blobs.sqlite")
        # Blob files this object wrote or checked: the stat evidence they had then, and whether intact.
        self._checks: dict[str, tuple[tuple[int, int, int, int], bool]] = {}

    @property
    def location(self) -> str:
        return f"local store {self.root}"

    # -- layout plumbing -------------------------------------------------------------------------

    def _ensure(self) -> None:
        try:
            for directory in (self.root / "blobs" / "sha256", self._tmp, self._lock_path.parent):
                directory.mkdir(parents=True, exist_ok=True)
            if not (self.root / "oci-layout").exists():
                self._write_atomic(self.root / "oci-layout", LAYOUT_VERSION)
            if not (self.root / "index.json").exists():
                self._write_atomic(self.root / "index.json", Index(manifests=[]).to_json())
        except OSError as exc:
            raise MlociError(f"cannot write the local store at {self.root}: {exc.strerror or exc}") from exc
        if not self._swept:
            self._swept = True
            self.sweep_leftovers()

    def sweep_leftovers(self, *, grace_seconds: float | None = None) -> int:
        """Remove temporary files of killed mloci processes; return how many.

        ``grace_seconds``: also files of versions that did not record their owner, when older.
        """
        removed = leftovers.sweep(self._tmp, TMP_PREFIXES)
        for workdir in IMAGE_WORKDIRS:  # layers `image build` and `push --format image-volume` write
            removed += leftovers.sweep(self._tmp / workdir, ("layer-",))
        if grace_seconds is not None:
            removed += leftovers.sweep(
                self._tmp,
                TMP_PREFIXES + LEGACY_TMP_PREFIXES,
                legacy_before=time.time() - grace_seconds,
            )
        return len(removed)

    @contextlib.contextmanager
    def _temporary(self, prefix: str) -> Iterator[tuple[int, Path]]:
        """A new file in ``tmp``, named after this process and locked while its descriptor is open;
        removed if the block fails. Created with SIGINT/SIGTERM deferred, so an interruption
        never leaves a file nobody knows the name of."""
        created: list[Path] = []
        try:
            with deferred():
                fd, name = tempfile.mkstemp(dir=self._tmp, prefix=leftovers.owned_prefix(prefix))
                created.append(Path(name))
                leftovers.hold(fd)
            yield fd, created[0]
        except BaseException:
            for path in created:
                path.unlink(missing_ok=True)
            raise

    def _write_atomic(self, path: Path, data: bytes) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        with self._temporary("write-") as (fd, tmp), os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            tmp.replace(path)

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.encoded

    def blob_intact(self, digest: Digest, *, rehash: bool = False) -> bool:
        """Whether the blob is present and matches its digest.

        Hashes it unless it was verified and has not changed since (``rehash`` hashes anyway).
        """
        path = self.blob_path(digest)
        try:
            info = path.stat()
            size = info.st_size
            known = self._checks.get(path.name)
            if not rehash and known is not None and known[0] == _evidence(info):
                return known[1]
            if not rehash and size >= CHECKED_MIN_SIZE and self._checked.known_good(path):
                return True
            actual, _ = hash_file(path)
        except OSError:
            return False
        if actual != digest:
            self._checks[path.name] = (
                _evidence(info),
                False,
            )  # asked again before it is replaced: no re-hash
            return False
        self._record(path)
        return True

    def _record(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            info = path.stat()
            self._checks[path.name] = (_evidence(info), True)
            if info.st_size >= CHECKED_MIN_SIZE:
                self._checked.record(path)

    def blob_problem(self, digest: Digest) -> IntegrityError:
        """The error for a blob of the local store that does not match its digest: which file, and the remedy."""
        return IntegrityError(
            f"blob {digest} in the {self.location} is damaged: {self.blob_path(digest)} does not match its digest",
            hint="'mloci fsck' lists every damaged blob; repair with 'mloci fsck --repair-from REGISTRY' "
            "or push the bundle again",
        )

    def replace_blob(self, descriptor: Descriptor, chunks: Iterator[bytes]) -> None:
        """Write the blob from ``chunks`` (verified on the way) over whatever the pool holds for it."""
        self._ensure()
        self._store_verified(
            self.blob_path(descriptor.digest), verified(chunks, descriptor, f"blob {descriptor.digest}"), None
        )

    def _read_index(self) -> list[Descriptor]:
        path = self.root / "index.json"
        if not path.exists():
            return []
        try:
            return list(Index.from_json(path.read_bytes()).manifests)
        except MlociError as exc:
            raise MlociError(f"the local store's index {path} is corrupt: {exc.message}") from exc

    @contextlib.contextmanager
    def _locked_index(self) -> Iterator[list[Descriptor]]:
        """Read-modify-write of index.json, serialized across processes."""
        self._ensure()
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                entries = self._read_index()
                yield entries
                self._write_atomic(self.root / "index.json", Index(manifests=entries).to_json())
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- Store protocol --------------------------------------------------------------------------

    def _entry_for(self, ref: Reference) -> Descriptor | None:
        want = f"{ref.repository}:{ref.tag}"
        return next((e for e in self._read_index() if e.annotation(ann.REF_NAME) == want), None)

    def _lookup(self, ref: Reference) -> Descriptor:
        """The descriptor ``ref`` names, not yet checked to be a manifest."""
        if ref.digest is not None:
            path = self.blob_path(ref.digest)
            if not path.is_file():
                raise NotFoundError(f"{ref} not found in the {self.location}")
            for entry in self._read_index():
                if entry.digest == ref.digest:
                    return entry.model_copy(update={"annotations": None})
            size = path.stat().st_size
            # Not listed (e.g. a child of an index): the bytes say what it is, in _manifest_bytes.
            return Descriptor(media_type="application/octet-stream", digest=ref.digest, size=size)
        if ref.tag is None:
            raise UsageError(f"{ref} names no tag or digest", hint=NO_VERSION_HINT)
        tagged = self._entry_for(ref)
        if tagged is None:
            raise NotFoundError(f"{ref} not found in the {self.location}")
        return tagged.model_copy(update={"annotations": None})

    def _manifest_bytes(self, ref: Reference, descriptor: Descriptor) -> tuple[Descriptor, bytes]:
        """The bytes of the manifest ``descriptor`` (found for ``ref``) describes, refused unless a manifest."""
        what = str(ref) if ref.digest is not None else f"{ref} names {descriptor.digest}, which"
        path = self.blob_path(descriptor.digest)
        try:
            size = path.stat().st_size
            if size > MAX_MANIFEST_SIZE:
                manifest_media_type(b"", what)  # raises: too large to be a manifest
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"manifest {descriptor.digest} is missing from the {self.location}") from exc
        media_type = manifest_media_type(data, what)
        if descriptor.media_type != media_type and descriptor.media_type not in mediatype.MANIFEST_TYPES:
            descriptor = descriptor.model_copy(update={"media_type": media_type})
        return descriptor, data

    def resolve(self, ref: Reference) -> Descriptor:
        descriptor, _ = self._manifest_bytes(ref, self._lookup(ref))
        return descriptor

    def fetch_manifest(self, ref: Reference) -> tuple[Descriptor, bytes]:
        descriptor, data = self._manifest_bytes(ref, self._lookup(ref))
        verify_bytes(data, descriptor, f"manifest {descriptor.digest}")
        check_manifest(data, descriptor.media_type, what=str(ref))
        return descriptor, data

    def push_manifest(self, ref: Reference, data: bytes, media_type: str) -> Descriptor:
        descriptor = Descriptor.of_bytes(media_type, data)
        if ref.digest is not None and ref.digest != descriptor.digest:
            raise IntegrityError(f"manifest digest {descriptor.digest} does not match {ref.digest}")
        self._ensure()
        path = self.blob_path(descriptor.digest)
        if not path.exists() or not self.blob_intact(descriptor.digest):
            self._write_atomic(path, data)
        artifact_type = None
        with contextlib.suppress(ValueError, AttributeError):
            artifact_type = jsontext.loads(data).get("artifactType")
        entry = descriptor.model_copy(
            update={"artifact_type": artifact_type if isinstance(artifact_type, str) else None}
        )
        with self._locked_index() as entries:
            if ref.tag is not None:
                name = f"{ref.repository}:{ref.tag}"
                entries[:] = [e for e in entries if e.annotation(ann.REF_NAME) != name]
                entries.append(entry.model_copy(update={"annotations": {ann.REF_NAME: name}}))
            # Drop the untagged marker once tagged, or add it when the manifest is not yet listed.
            untagged = entry.model_copy(update={"annotations": {ann.REPOSITORY: ref.repository}})
            entries[:] = [e for e in entries if e != untagged]
            listed = any(
                e.digest == entry.digest and self._repository_of(e) == ref.repository for e in entries
            )
            if not listed:
                entries.append(untagged)
        return descriptor

    @staticmethod
    def _repository_of(entry: Descriptor) -> str | None:
        name = entry.annotation(ann.REF_NAME)
        return name.rpartition(":")[0] if name is not None else entry.annotation(ann.REPOSITORY)

    def has_blob(self, repository: str, digest: Digest) -> bool:
        """Present and intact: a damaged blob counts as absent, so pushing it again replaces it."""
        return self.blob_intact(digest)

    def push_blob(self, repository: str, blob: Blob, progress: Progress | None = None) -> BlobOutcome:
        descriptor = blob.descriptor
        target = self.blob_path(descriptor.digest)
        if self.blob_intact(descriptor.digest):
            return "present"
        self._ensure()

        def chunks() -> Iterator[bytes]:
            with blob.open() as source:
                while chunk := source.read(_CHUNK):
                    yield chunk

        self._store_verified(target, verified(chunks(), descriptor, f"blob {descriptor.digest}"), progress)
        return "uploaded"

    def ingest_file(
        self, path: Path, check: Callable[[], None] | None = None, *, added: set[Digest] | None = None
    ) -> tuple[Digest, int]:
        """Copy a file into the blob pool while hashing it, in parallel.

        The digest goes into ``added`` when the pool did not hold the blob before, or held a damaged
        copy that this one replaced (push statistics).

        The kernel copies (a reflink, or ``copy_file_range``: no bytes through Python) while this thread hashes from
        the page cache, so ingesting costs about one hash. The file's identity is checked
        before and after: a file that changed meanwhile is refused rather than stored under a
        digest of other bytes.
        """
        self._ensure()
        before = path.stat()
        with self._temporary("ingest-") as (fd, tmp):
            try:
                return self._ingest(path, before, tmp, check, added)
            except OSError as exc:
                raise MlociError(
                    f"cannot copy {path} into the {self.location}: {exc.strerror or exc}"
                ) from exc
            finally:
                os.close(fd)

    def _ingest(
        self,
        path: Path,
        before: os.stat_result,
        tmp: Path,
        check: Callable[[], None] | None,
        added: set[Digest] | None,
    ) -> tuple[Digest, int]:
        copy_error: list[BaseException] = []

        def copy() -> None:
            try:
                fast_copy(path, tmp)
            except BaseException as exc:
                copy_error.append(exc)

        worker = threading.Thread(target=copy, name="mloci-ingest")
        try:
            # start() waits for the thread and so can be interrupted after the thread runs: join in any case.
            worker.start()
            digest, size = hash_file(path, check)
        finally:
            _join(worker)
        if copy_error:
            raise copy_error[0]
        after = path.stat()
        if (before.st_size, before.st_mtime_ns, before.st_ino) != (
            after.st_size,
            after.st_mtime_ns,
            after.st_ino,
        ):
            raise IntegrityError(f"{path} changed while it was being stored; push again")
        target = self.blob_path(digest)
        if self.blob_intact(digest):
            tmp.unlink()
        else:  # absent, or damaged: the verified copy replaces it
            tmp.replace(target)
            self._record(target)
            if added is not None:
                added.add(digest)  # new or repaired: this push stored it
        return digest, size

    def _store_verified(self, target: Path, chunks: Iterator[bytes], progress: Progress | None) -> None:
        try:
            with self._temporary("blob-") as (fd, tmp), os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    if progress:
                        progress(len(chunk))
                handle.flush()
                os.fsync(handle.fileno())
                tmp.replace(target)
            self._record(target)
        except OSError as exc:
            raise MlociError(f"cannot write to the {self.location}: {exc.strerror or exc}") from exc

    @contextlib.contextmanager
    def open_blob(self, repository: str, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        path = self.blob_path(descriptor.digest)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {descriptor.digest} is missing from the {self.location}") from None
        with handle:

            def chunks() -> Iterator[bytes]:
                while chunk := handle.read(_CHUNK):
                    yield chunk

            def checked() -> Iterator[bytes]:
                try:
                    yield from verified(chunks(), descriptor, f"blob {descriptor.digest}")
                except IntegrityError:
                    # The digest is what the manifest asked for: the file in the pool is what is wrong.
                    if not self.blob_intact(descriptor.digest, rehash=True):
                        raise self.blob_problem(descriptor.digest) from None
                    raise

            yield checked()

    def list_tags(self, repository: str) -> list[str]:
        prefix = f"{repository}:"
        tags = []
        for entry in self._read_index():
            name = entry.annotation(ann.REF_NAME) or ""
            if name.startswith(prefix) and "/" not in name[len(prefix) :]:
                tags.append(name[len(prefix) :])
        if not tags and not any(self._repository_of(e) == repository for e in self._read_index()):
            raise NotFoundError(f"repository {repository!r} not found in the {self.location}")
        return sorted(tags)

    def delete_manifest(self, repository: str, digest: Digest) -> None:
        """Drop every index entry of ``digest`` in ``repository``; blobs go with :meth:`collect_garbage`."""
        with self._locked_index() as entries:
            before = len(entries)
            entries[:] = [
                e for e in entries if not (e.digest == digest and self._repository_of(e) == repository)
            ]
            if len(entries) == before:
                raise NotFoundError(f"{repository}@{digest} not found in the {self.location}")

    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        return None  # the layout keeps referrers with the tag schema, like registries without the API

    def collect_garbage(self, *, grace_seconds: float = GC_GRACE_SECONDS) -> int:
        """Delete blobs no listed manifest reaches; return how many. Runs under the index lock."""
        removed = 0
        with self._locked_index() as entries:
            live: set[str] = set()
            manifests = [str(e.digest) for e in entries]
            while manifests:
                digest = manifests.pop()
                if digest in live:
                    continue
                live.add(digest)
                try:
                    path = self.blob_path(Digest.parse(digest))
                    if path.stat().st_size > MAX_MANIFEST_SIZE:
                        continue
                    document = jsontext.loads(path.read_bytes())
                except (OSError, ValueError, MlociError):
                    continue
                if not isinstance(document, dict):
                    continue
                # Manifests reach blobs (config, layers) and, through an index, more manifests.
                for item in [document.get("config"), *(document.get("layers") or [])]:
                    if isinstance(item, dict) and isinstance(item.get("digest"), str):
                        live.add(item["digest"])
                for item in [document.get("subject"), *(document.get("manifests") or [])]:
                    if isinstance(item, dict) and isinstance(item.get("digest"), str):
                        manifests.append(item["digest"])
            # Blobs of a push still in progress are not listed yet: spare anything recent.
            cutoff = time.time() - grace_seconds
            for path in (self.root / "blobs" / "sha256").iterdir():
                if f"sha256:{path.name}" not in live and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def blob_files(self) -> Iterator[tuple[Digest, Path]]:
        """Every file of the blob pool whose name is a digest (anything else is not ours to judge)."""
        pool = self.root / "blobs" / "sha256"
        for path in sorted(pool.iterdir()) if pool.is_dir() else []:
            try:
                digest = Digest.parse(f"sha256:{path.name}")
            except MlociError:
                continue
            if path.is_file() and not path.is_symlink():
                yield digest, path

    def listed(self) -> list[tuple[Descriptor, str]]:
        """Every manifest ``index.json`` lists, as (its entry, its repository)."""
        return [(e, r) for e in self._read_index() if (r := self._repository_of(e))]

    def repositories(self) -> list[str]:
        return sorted({r for e in self._read_index() if (r := self._repository_of(e))})

    def close(self) -> None:
        self._checked.close()
