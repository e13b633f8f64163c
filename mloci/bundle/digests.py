"""A cache of file digests keyed by what ``stat`` says, so unchanged multi-GB files are not re-hashed.

The key is (path, device, inode, size, mtime_ns, ctime_ns) — the same evidence git's index
trusts. ctime cannot be set from user space, so any write to the file invalidates the entry.
The cache is an optimisation only: any problem with it means "hash the file".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from mloci._sqlite import LazyCache
from mloci.types.digest import Digest, hash_file

# (file, its path in the bundle) -> (digest, size)
Hasher = Callable[[Path, str], tuple[Digest, int]]

# Below this size hashing is cheaper than a cache lookup is worth.
MIN_CACHED_SIZE = 1 << 20


class DigestCache:
    def __init__(self, path: Path | None) -> None:
        self._cache = LazyCache(
            path,  # None: disabled
            "CREATE TABLE IF NOT EXISTS digests (path TEXT, dev INT, ino INT, size INT, mtime INT, ctime INT,"
            " digest TEXT, PRIMARY KEY (path, dev, ino))",
        )

    @staticmethod
    def _key(path: Path) -> tuple[str, int, int, int, int, int]:
        info = path.stat()
        return (
            str(path.resolve()),
            info.st_dev,
            info.st_ino,
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,
        )

    def get(self, key: tuple[str, int, int, int, int, int]) -> tuple[Digest, int] | None:
        rows = self._cache.rows(
            "SELECT digest FROM digests WHERE path=? AND dev=? AND ino=? AND size=? AND mtime=? AND ctime=?",
            key,
        )
        with contextlib.suppress(ValueError):
            if rows:
                return Digest.parse(rows[0][0]), key[3]
        return None

    def put(self, key: tuple[str, int, int, int, int, int], digest: Digest) -> None:
        self._cache.write("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)", (*key, str(digest)))

    def hasher(self, inner: Hasher | None = None) -> Hasher:
        """``inner`` (hash or ingest a file), skipped when the cache already knows the file."""

        compute = inner or (lambda path, _: hash_file(path))

        def digest_of(path: Path, label: str) -> tuple[Digest, int]:
            try:
                if path.stat().st_size < MIN_CACHED_SIZE:
                    return compute(path, label)
                key = self._key(path)
            except OSError:
                return compute(path, label)
            cached = self.get(key)
            if cached is not None:
                return cached
            digest, size = compute(path, label)
            # Only remember the digest if the file did not change while it was read.
            with contextlib.suppress(OSError):
                if self._key(path) == key:
                    self.put(key, digest)
            return digest, size

        return digest_of

    def close(self) -> None:
        self._cache.close()


def default_cache(home: Path) -> DigestCache:
    if os.environ.get("MLOCI_NO_DIGEST_CACHE"):
        return DigestCache(None)
    return DigestCache(home / "cache" / "digests.sqlite")
