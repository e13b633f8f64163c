"""Small SQLite caches under $MLOCI_HOME: opened lazily, and never allowed to break an operation."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def open_cache(path: Path | None, schema: str) -> sqlite3.Connection | None:
    """A connection to the cache at ``path`` with ``schema`` applied; None when disabled or unusable."""
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=5, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # A cache needs consistency, not durability: no fsync on every commit (WAL stays consistent).
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(schema)
    except (OSError, sqlite3.Error):
        return None
    return db


class LazyCache:
    """A cache database opened on first use and shared by threads (one lock).

    Every failure reads as a miss and makes a write a no-op; a cache that cannot be opened is
    not tried again (the operation goes on without it).
    """

    def __init__(self, path: Path | None, schema: str) -> None:
        self._path = path  # None: disabled
        self._schema = schema
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and self._path is not None:
            self._db = open_cache(self._path, self._schema)
            if self._db is None:
                self._path = None
        return self._db

    def rows(self, sql: str, parameters: Sequence[object]) -> list[tuple[Any, ...]]:
        """What the query ``sql`` returns; nothing when the cache is disabled or fails."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            db = self._connect()
            if db is not None:
                return db.execute(sql, parameters).fetchall()
        return []

    def write(self, sql: str, parameters: Sequence[object]) -> None:
        """Run the statement ``sql``; a failure only means the cache learns nothing."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            db = self._connect()
            if db is not None:
                db.execute(sql, parameters)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
