"""Small SQLite caches under $MLOCI_HOME: opened lazily, and never allowed to break an operation."""

from __future__ import annotations

import sqlite3
from pathlib import Path


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
