"""Which repositories of a registry are known to hold a blob, so pushes can mount instead of upload.

Like skopeo's blob-info cache: every blob mloci uploads, finds, mounts or downloads is noted;
pushing it to another repository of the same registry then tries a cross-repository mount
(``POST ?mount=&from=``), which moves no bytes. A stale entry only costs a refused mount.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

from mloci._sqlite import open_cache
from mloci.types.digest import Digest


class BlobLocations:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and self._path is not None:
            self._db = open_cache(
                self._path,
                "CREATE TABLE IF NOT EXISTS blob_locations (registry TEXT, digest TEXT, repository TEXT,"
                " PRIMARY KEY (registry, digest, repository))",
            )
            if self._db is None:
                self._path = None
        return self._db

    def note(self, registry: str, repository: str, digest: Digest) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            db = self._connect()
            if db is not None:
                db.execute(
                    "INSERT OR IGNORE INTO blob_locations VALUES (?, ?, ?)",
                    (registry, str(digest), repository),
                )

    def forget(self, registry: str, repository: str, digest: Digest) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            db = self._connect()
            if db is not None:
                db.execute(
                    "DELETE FROM blob_locations WHERE registry=? AND digest=? AND repository=?",
                    (registry, str(digest), repository),
                )

    def candidates(self, registry: str, repository: str, digest: Digest, limit: int = 3) -> list[str]:
        with self._lock, contextlib.suppress(sqlite3.Error):
            db = self._connect()
            if db is not None:
                rows = db.execute(
                    "SELECT repository FROM blob_locations WHERE registry=? AND digest=? AND repository!=? LIMIT ?",
                    (registry, str(digest), repository, limit),
                ).fetchall()
                return [row[0] for row in rows]
        return []

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
