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
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mloci.atomic import write_atomic
from mloci.errors import IntegrityError, MlociError, NotFoundError, UsageError
from mloci.store._copy import fast_copy
from mloci.store.base import MAX_MANIFEST_SIZE, BlobOutcome, Progress, verified, verify_bytes
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest, hash_file
from mloci.types.manifest import Descriptor, Index, check_manifest
from mloci.types.reference import NO_VERSION_HINT, Reference

_CHUNK = 1 << 20
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'
GC_GRACE_SECONDS = 600


def _media_type_of(data: bytes) -> str:
    try:
        value = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        value = None
    return value if isinstance(value, str) else mediatype.OCI_MANIFEST


class LayoutStore:
    """A :class:`~mloci.store.Store` over an OCI image-layout directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = home / "oci"
        self._tmp = home / "tmp"
        self._lock_path = home / "locks" / "index.lock"

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

    def _write_atomic(self, path: Path, data: bytes) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, staging=self._tmp)

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.encoded

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

    def resolve(self, ref: Reference) -> Descriptor:
        if ref.digest is not None:
            path = self.blob_path(ref.digest)
            if not path.is_file():
                raise NotFoundError(f"{ref} not found in the {self.location}")
            for entry in self._read_index():
                if entry.digest == ref.digest:
                    return entry.model_copy(update={"annotations": None})
            size = path.stat().st_size
            if size > MAX_MANIFEST_SIZE:
                raise IntegrityError(f"{ref} is not a manifest ({size} bytes)")
            return Descriptor(media_type=_media_type_of(path.read_bytes()), digest=ref.digest, size=size)
        if ref.tag is None:
            raise UsageError(f"{ref} names no tag or digest", hint=NO_VERSION_HINT)
        tagged = self._entry_for(ref)
        if tagged is None:
            raise NotFoundError(f"{ref} not found in the {self.location}")
        return tagged.model_copy(update={"annotations": None})

    def fetch_manifest(self, ref: Reference) -> tuple[Descriptor, bytes]:
        descriptor = self.resolve(ref)
        if descriptor.size > MAX_MANIFEST_SIZE:
            raise IntegrityError(f"manifest {descriptor.digest} is larger than {MAX_MANIFEST_SIZE} bytes")
        try:
            data = self.blob_path(descriptor.digest).read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"manifest {descriptor.digest} is missing from the {self.location}") from exc
        verify_bytes(data, descriptor, f"manifest {descriptor.digest}")
        check_manifest(data, descriptor.media_type, what=str(ref))
        return descriptor, data

    def push_manifest(self, ref: Reference, data: bytes, media_type: str) -> Descriptor:
        descriptor = Descriptor.of_bytes(media_type, data)
        if ref.digest is not None and ref.digest != descriptor.digest:
            raise IntegrityError(f"manifest digest {descriptor.digest} does not match {ref.digest}")
        self._ensure()
        path = self.blob_path(descriptor.digest)
        if not path.exists():
            self._write_atomic(path, data)
        artifact_type = None
        with contextlib.suppress(ValueError, AttributeError):
            artifact_type = json.loads(data).get("artifactType")
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
        return self.blob_path(digest).is_file()

    def push_blob(self, repository: str, blob: Blob, progress: Progress | None = None) -> BlobOutcome:
        descriptor = blob.descriptor
        target = self.blob_path(descriptor.digest)
        if target.is_file():
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

        The digest goes into ``added`` when the pool did not hold the blob before (push statistics).

        The kernel copies (a reflink, or ``copy_file_range``: no bytes through Python) while this thread hashes from
        the page cache, so ingesting costs about one hash. The file's identity is checked
        before and after: a file that changed meanwhile is refused rather than stored under a
        digest of other bytes.
        """
        self._ensure()
        before = path.stat()
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="ingest-")
        os.close(fd)
        copy_error: list[BaseException] = []

        def copy() -> None:
            try:
                fast_copy(path, Path(tmp))
            except BaseException as exc:
                copy_error.append(exc)

        worker = threading.Thread(target=copy, name="mloci-ingest")
        worker.start()
        try:
            try:
                digest, size = hash_file(path, check)
            finally:
                worker.join()
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
            if target.exists():
                Path(tmp).unlink()
            else:
                Path(tmp).replace(target)
                if added is not None:
                    added.add(digest)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise MlociError(
                    f"cannot copy {path} into the {self.location}: {exc.strerror or exc}"
                ) from exc
            raise
        return digest, size

    def _store_verified(self, target: Path, chunks: Iterator[bytes], progress: Progress | None) -> None:
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    if progress:
                        progress(len(chunk))
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(target)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise MlociError(f"cannot write to the {self.location}: {exc.strerror or exc}") from exc
            raise

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

            yield verified(chunks(), descriptor, f"blob {descriptor.digest}")

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
                    document = json.loads(path.read_bytes())
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

    def repositories(self) -> list[str]:
        return sorted({r for e in self._read_index() if (r := self._repository_of(e))})

    def close(self) -> None:
        return None
