"""Which repositories of a registry are known to hold a blob, so pushes can mount instead of upload.

Like skopeo's blob-info cache: every blob mloci uploads, finds, mounts or downloads is noted;
pushing it to another repository of the same registry then tries a cross-repository mount
(``POST ?mount=&from=``), which moves no bytes. A stale entry only costs a refused mount.
"""

from __future__ import annotations

from pathlib import Path

from mloci._sqlite import LazyCache
from mloci.types.digest import Digest


class BlobLocations:
    def __init__(self, path: Path | None) -> None:
        self._cache = LazyCache(
            path,
            "CREATE TABLE IF NOT EXISTS blob_locations (registry TEXT, digest TEXT, repository TEXT,"
            " PRIMARY KEY (registry, digest, repository))",
        )

    def note(self, registry: str, repository: str, digest: Digest) -> None:
        self._cache.write(
            "INSERT OR IGNORE INTO blob_locations VALUES (?, ?, ?)", (registry, str(digest), repository)
        )

    def forget(self, registry: str, repository: str, digest: Digest) -> None:
        self._cache.write(
            "DELETE FROM blob_locations WHERE registry=? AND digest=? AND repository=?",
            (registry, str(digest), repository),
        )

    def candidates(self, registry: str, repository: str, digest: Digest, limit: int = 3) -> list[str]:
        rows = self._cache.rows(
            "SELECT repository FROM blob_locations WHERE registry=? AND digest=? AND repository!=? LIMIT ?",
            (registry, str(digest), repository, limit),
        )
        return [row[0] for row in rows]

    def close(self) -> None:
        self._cache.close()
