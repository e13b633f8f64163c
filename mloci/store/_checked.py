"""Which blobs of the local store were verified since they last changed, keyed by what ``stat`` says.

A blob is recorded when mloci wrote it (after hashing) or hashed it; the record holds while
(device, inode, size, mtime, ctime) stay the same — ctime cannot be set from user space, so
any write to the file, a truncation or a replacement invalidates it and the next check
hashes the file again. Silent bit rot does not change ``stat``: ``mloci fsck`` hashes
everything regardless. Like the digest cache, any problem here just means "hash it".
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mloci._sqlite import LazyCache

_Key = tuple[str, int, int, int, int, int]


class CheckedBlobs:
    def __init__(self, path: Path | None) -> None:
        self._cache = LazyCache(
            path,
            "CREATE TABLE IF NOT EXISTS checked (name TEXT PRIMARY KEY, dev INT, ino INT, size INT,"
            " mtime INT, ctime INT)",
        )

    @staticmethod
    def _key(blob: Path) -> _Key:
        info = blob.stat()
        return (blob.name, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)

    def known_good(self, blob: Path) -> bool:
        """Whether ``blob`` was verified and has not changed since."""
        try:
            key = self._key(blob)
        except OSError:
            return False
        return bool(
            self._cache.rows(
                "SELECT 1 FROM checked WHERE name=? AND dev=? AND ino=? AND size=? AND mtime=? AND ctime=?",
                key,
            )
        )

    def record(self, blob: Path) -> None:
        """``blob`` was just verified (or written from verified bytes)."""
        with contextlib.suppress(OSError):
            self._cache.write("INSERT OR REPLACE INTO checked VALUES (?, ?, ?, ?, ?, ?)", self._key(blob))

    def close(self) -> None:
        self._cache.close()
