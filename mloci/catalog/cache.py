"""A cache of immutable registry content by digest, and a Store that reads through it.

Manifests and small blobs (bundle manifests, promotion records, referrer indexes) are stored by
digest in SQLite: content named by a digest never changes, so it is never re-read. Tags are the
only mutable state. Tags mloci treats as immutable — version tags and promotion-record tags — are
remembered for :data:`IMMUTABLE_TAG_TTL` seconds (``push --force`` can still move a version tag;
the catalog notices within that time); every other tag (environments, ``latest``, the referrers
fallback index) is resolved again at each refresh.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from mloci._sqlite import open_cache
from mloci.errors import MlociError
from mloci.store import Store
from mloci.store.base import BlobOutcome, Progress, verify_bytes
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.types.reference import Reference
from mloci.types.semver import is_version_tag

IMMUTABLE_TAG_TTL: Final = 3600.0
# Blobs up to this size are cached (metadata: bundle manifests, records, reports); larger ones stream.
MAX_CACHED_BLOB: Final = 1 << 20
_RECORD_PREFIX: Final = "mloci-promotion-"

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS content (digest TEXT PRIMARY KEY, media_type TEXT NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tags (location TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, "
    "digest TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL, checked REAL NOT NULL, "
    "PRIMARY KEY (location, repository, tag))",
)


def is_immutable_tag(tag: str) -> bool:
    return is_version_tag(tag) or tag.startswith(_RECORD_PREFIX)


class ContentCache:
    """Content by digest and immutable tag → digest, in SQLite; in memory only when ``path`` is None.

    A cache that cannot be opened or written never fails a read: it just stops caching.
    """

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._memory: dict[str, tuple[str, bytes]] = {}
        self._memory_tags: dict[tuple[str, str, str], tuple[Descriptor, float]] = {}
        if path is not None:
            self._db = open_cache(path, _SCHEMA[0])
            if self._db is not None:
                try:
                    self._db.execute(_SCHEMA[1])
                except sqlite3.Error:
                    self._db = None

    def get(self, digest: Digest) -> tuple[str, bytes] | None:
        key = str(digest)
        with self._lock:
            if self._db is None:
                return self._memory.get(key)
            try:
                row = self._db.execute(
                    "SELECT media_type, data FROM content WHERE digest = ?", (key,)
                ).fetchone()
            except sqlite3.Error:
                return None
        return (str(row[0]), bytes(row[1])) if row else None

    def put(self, digest: Digest, media_type: str, data: bytes) -> None:
        with self._lock:
            if self._db is None:
                self._memory[str(digest)] = (media_type, data)
                return
            with contextlib.suppress(sqlite3.Error):
                self._db.execute(
                    "INSERT OR IGNORE INTO content (digest, media_type, data) VALUES (?, ?, ?)",
                    (str(digest), media_type, data),
                )

    def tag(self, location: str, repository: str, tag: str) -> Descriptor | None:
        now = time.time()
        with self._lock:
            if self._db is None:
                found = self._memory_tags.get((location, repository, tag))
                return found[0] if found and now - found[1] < IMMUTABLE_TAG_TTL else None
            try:
                row = self._db.execute(
                    "SELECT digest, media_type, size, checked FROM tags WHERE location = ? AND repository = ? AND tag = ?",
                    (location, repository, tag),
                ).fetchone()
            except sqlite3.Error:
                return None
        if row is None or now - float(row[3]) >= IMMUTABLE_TAG_TTL:
            return None
        return Descriptor(media_type=str(row[1]), digest=Digest.parse(str(row[0])), size=int(row[2]))

    def set_tag(self, location: str, repository: str, tag: str, descriptor: Descriptor) -> None:
        now = time.time()
        with self._lock:
            if self._db is None:
                self._memory_tags[(location, repository, tag)] = (descriptor, now)
                return
            with contextlib.suppress(sqlite3.Error):
                self._db.execute(
                    "INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        location,
                        repository,
                        tag,
                        str(descriptor.digest),
                        descriptor.media_type,
                        descriptor.size,
                        now,
                    ),
                )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class CachingStore:
    """A read-through :class:`Store`: manifests and small blobs come from the cache when it has them.

    Writes pass straight to the wrapped store. Content read from the wrapped store was verified
    there (a pinned fetch checks its digest); content read from the cache is checked again, so
    a corrupted cache file can never show as registry content.
    """

    def __init__(self, inner: Store, cache: ContentCache, location: str) -> None:
        self.inner = inner
        self.cache = cache
        self._location = location

    @property
    def location(self) -> str:
        return self.inner.location

    def _cached_manifest(self, digest: Digest) -> tuple[Descriptor, bytes] | None:
        found = self.cache.get(digest)
        if found is None:
            return None
        media_type, data = found
        try:
            verify_bytes(data, digest, f"cached manifest {digest}")
        except MlociError:
            return None
        return Descriptor(media_type=media_type, digest=digest, size=len(data)), data

    def _remember(self, ref: Reference, descriptor: Descriptor, data: bytes) -> None:
        self.cache.put(descriptor.digest, descriptor.media_type, data)
        if ref.digest is None and ref.tag and is_immutable_tag(ref.tag):
            self.cache.set_tag(self._location, ref.repository, ref.tag, descriptor)

    def _immutable(self, ref: Reference) -> Descriptor | None:
        if ref.digest is None and ref.tag and is_immutable_tag(ref.tag):
            return self.cache.tag(self._location, ref.repository, ref.tag)
        return None

    def resolve(self, ref: Reference) -> Descriptor:
        if ref.digest is not None:
            found = self._cached_manifest(ref.digest)
            if found is not None:
                return found[0]
            return self.fetch_manifest(ref)[0]
        known = self._immutable(ref)
        if known is not None:
            return known
        if ref.tag and is_immutable_tag(ref.tag):
            return self.fetch_manifest(ref)[0]  # one GET now saves a GET later
        return self.inner.resolve(ref)

    def fetch_manifest(self, ref: Reference) -> tuple[Descriptor, bytes]:
        digest = ref.digest
        if digest is None:
            known = self._immutable(ref)
            digest = known.digest if known else None
        if digest is not None:
            found = self._cached_manifest(digest)
            if found is not None:
                return found
        descriptor, data = self.inner.fetch_manifest(ref)
        self._remember(ref, descriptor, data)
        return descriptor, data

    def push_manifest(self, ref: Reference, data: bytes, media_type: str) -> Descriptor:
        return self.inner.push_manifest(ref, data, media_type)

    def has_blob(self, repository: str, digest: Digest) -> bool:
        return self.inner.has_blob(repository, digest)

    def push_blob(self, repository: str, blob: Blob, progress: Progress | None = None) -> BlobOutcome:
        return self.inner.push_blob(repository, blob, progress)

    @contextlib.contextmanager
    def open_blob(self, repository: str, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        if descriptor.size > MAX_CACHED_BLOB:
            with self.inner.open_blob(repository, descriptor) as chunks:
                yield chunks
            return
        found = self.cache.get(descriptor.digest)
        if found is not None:
            try:
                verify_bytes(found[1], descriptor, f"cached blob {descriptor.digest}")
            except MlociError:
                found = None
        if found is None:
            with self.inner.open_blob(repository, descriptor) as chunks:
                data = b"".join(chunks)  # verified by the inner store as it is read
            self.cache.put(descriptor.digest, descriptor.media_type, data)
        else:
            data = found[1]
        yield iter((data,))

    def list_tags(self, repository: str) -> list[str]:
        return self.inner.list_tags(repository)

    def delete_manifest(self, repository: str, digest: Digest) -> None:
        self.inner.delete_manifest(repository, digest)

    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        return self.inner.referrers(repository, digest, artifact_type)

    def close(self) -> None:
        self.inner.close()
