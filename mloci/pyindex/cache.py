"""``--cache-upstream``: public files kept in the registry, so builds keep working when the upstream is down.

A file streamed from an upstream is spooled to a private temporary directory while it is sent;
once its sha256 matched the upstream page's, it is published (in the background, with the
server's own credentials) like ``mloci wheel push`` into ``<cache namespace>/<project>``, a
namespace apart from the private one: a cached public package must never make its name private.
Only wheels and sdists whose page gave a sha256 are cached (a release layer's digest *is* the
file's sha256). Later downloads of a cached file are served from the registry, and a project page
falls back to the cached releases when every upstream fails.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mloci.errors import MlociError, NotFoundError, UsageError
from mloci.ops.wheel import list_releases, project_repository, publish, read_release
from mloci.python.artifact import Release, ReleaseFile
from mloci.python.distribution import read_distribution
from mloci.python.filenames import parse_filename
from mloci.python.uploadtime import parse_time
from mloci.store import RegistryStore
from mloci.types.reference import Reference

log = logging.getLogger("mloci.pyindex")


class Spool:
    """One upstream file being written aside while it streams to a client."""

    def __init__(
        self, cache: UpstreamCache, project: str, filename: str, sha256: str, upload_time: str | None = None
    ) -> None:
        self._cache = cache
        self.project = project
        self.sha256 = sha256
        self.upload_time = upload_time
        self.directory = Path(tempfile.mkdtemp(prefix="mloci-upstream-"))
        self.path = self.directory / filename
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self._handle = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)

    def commit(self) -> None:
        """The whole file arrived and matched its hash: publish it in the background."""
        self._handle.close()
        self._cache.submit(self)

    def discard(self) -> None:
        self._handle.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class UpstreamCache:
    """Releases of public projects under ``base`` (``registry/namespace``)."""

    def __init__(self, base: str, store: Callable[[], RegistryStore], *, concurrency: int = 4) -> None:
        self.base = base
        self._store = store
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="upstream-cache")

    def repository(self, project: str) -> Reference:
        return project_repository(self.base, project)

    def releases(self, store: RegistryStore, project: str) -> list[Release]:
        try:
            return list_releases(store, self.repository(project))
        except NotFoundError:
            return []

    def file(self, store: RegistryStore, project: str, filename: str) -> ReleaseFile | None:
        try:
            version = parse_filename(filename).version
        except UsageError:
            return None
        release = read_release(store, self.repository(project), version)
        return release.file(filename) if release is not None else None

    def spool(
        self, project: str, filename: str, hashes: dict[str, str], upload_time: str | None = None
    ) -> Spool | None:
        """A spool for a file worth caching (a wheel or sdist with a sha256), else None; the cached
        file keeps the upstream's ``upload_time`` (PEP 700) when its page gave one."""
        sha256 = hashes.get("sha256")
        try:
            parse_filename(filename)
        except UsageError:
            return None
        return Spool(self, project, filename, sha256, parse_time(upload_time)) if sha256 else None

    def submit(self, spool: Spool) -> None:
        try:
            self._pool.submit(self._publish, spool)
        except RuntimeError:  # shutting down
            spool.discard()

    def _publish(self, spool: Spool) -> None:
        try:
            dist = read_distribution(spool.path)
            if dist.digest.encoded != spool.sha256:
                log.error("not caching %s: its sha256 changed on disk", dist.filename)
                return
            publish(
                self._store(),
                self.repository(spool.project),
                [dist],
                concurrency=self._concurrency,
                created=spool.upload_time,
            )
            log.info("cached %s in %s", dist.filename, self.repository(spool.project))
        except MlociError as exc:
            log.warning("could not cache %s: %s", spool.path.name, exc)
        finally:
            spool.discard()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
