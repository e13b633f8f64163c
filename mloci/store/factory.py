"""The one place options become stores, and the session that keeps them open across operations."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from mloci import settings
from mloci.store.archive import ArchiveReference, ArchiveStore
from mloci.store.base import Store
from mloci.store.layout import LayoutStore
from mloci.store.registry import RegistryStore, credentials
from mloci.store.registry.auth import Credentials
from mloci.store.registry.locations import BlobLocations
from mloci.store.registry.sessions import UploadSessions
from mloci.types.reference import Reference


@dataclass(frozen=True)
class StoreOptions:
    """How to reach registries; the CLI fills this from flags and environment, a Client from its arguments."""

    plain_http: bool | None = None  # None: HTTPS, except loopback registries that only speak HTTP
    insecure: bool = False
    ca_file: str | None = None
    concurrency: int = 4
    chunk_size: int | None = None  # None: one streamed PATCH per blob
    # Seconds to wait for a registry's answer (each read of it) before the attempt fails; None: 60.
    timeout: float | None = None
    # Further attempts after a temporary failure (timeouts, resets, 5xx); None: 4.
    retries: int | None = None


def open_registry(
    registry: str,
    options: StoreOptions | None = None,
    *,
    credentials_override: Credentials | None = None,
    pool_size: int | None = None,
    remember_locations: bool = True,
) -> RegistryStore:
    """A store for ``registry``: credentials from ``credentials_override``, else the usual sources, looked up lazily."""
    options = options or StoreOptions()
    return RegistryStore(
        registry,
        plain_http=options.plain_http,
        insecure=options.insecure,
        ca_file=options.ca_file,
        credentials=credentials_override
        if credentials_override is not None
        else (lambda: credentials.lookup(registry)),
        concurrency=max(options.concurrency, pool_size or 0),
        chunk_size=options.chunk_size,
        timeout=options.timeout,
        retries=options.retries,
        locations=BlobLocations(
            settings.home() / "cache" / "blob-locations.sqlite" if remember_locations else None
        ),
        sessions=UploadSessions(settings.home() / "uploads"),
    )


def open_store(ref: Reference, options: StoreOptions | None = None) -> Store:
    """The store ``ref`` lives in: the local OCI layout when it names no registry, else that registry."""
    if isinstance(ref, ArchiveReference):  # oci-archive:PATH (read-only)
        return ArchiveStore(ref.archive)
    if ref.registry is None:
        return LayoutStore(settings.home())
    return open_registry(ref.registry, options)


class Session:
    """Stores opened on first use and kept open until :meth:`close`: one connection pool and token
    cache per registry, shared by every operation (and thread) that uses the session.

    Operations take ``session=``; without one they open a session of their own for the call.
    With ``credentials``, every registry the session opens uses them instead of the usual sources
    (a server acting for a caller builds one from the caller's credentials).
    """

    def __init__(
        self, options: StoreOptions | None = None, *, credentials: Credentials | None = None
    ) -> None:
        self.options = options or StoreOptions()
        self._credentials = credentials
        self._lock = threading.Lock()
        self._registries: dict[str, RegistryStore] = {}
        self._layouts: dict[Path, LayoutStore] = {}
        self._archives: dict[Path, ArchiveStore] = {}
        self._closed = False

    def store(self, ref: Reference) -> Store:
        """The store ``ref`` lives in (the local store follows ``$MLOCI_HOME`` as it is now)."""
        if isinstance(ref, ArchiveReference):  # oci-archive:PATH (read-only), closed with the session
            with self._lock:
                return self._archives.setdefault(ref.archive, ArchiveStore(ref.archive))
        if ref.registry is None:
            home = settings.home()
            with self._lock:
                return self._layouts.setdefault(home, LayoutStore(home))
        return self.registry(ref.registry)

    def registry(self, host: str) -> RegistryStore:
        with self._lock:
            if self._closed:
                raise RuntimeError("this mloci session is closed")
            store = self._registries.get(host)
            if store is None:
                store = self._registries[host] = open_registry(
                    host,
                    self.options,
                    credentials_override=self._credentials,
                    remember_locations=self._credentials is None,
                )
            return store

    def close(self) -> None:
        with self._lock:
            self._closed = True
            stores: list[Store] = [
                *self._registries.values(),
                *self._layouts.values(),
                *self._archives.values(),
            ]
            self._registries.clear()
            self._layouts.clear()
            self._archives.clear()
        for store in stores:
            store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Scope:
    """The given session, or a new one that :meth:`close` closes; usable as ``with scoped(session) as s``."""

    def __init__(self, session: Session | None, options: StoreOptions | None) -> None:
        self._own = session is None
        self.session = session if session is not None else Session(options)

    def close(self) -> None:
        if self._own:
            self.session.close()

    def __enter__(self) -> Session:
        return self.session

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def scoped(session: Session | None, options: StoreOptions | None = None) -> Scope:
    """Operations call this with their ``session=`` argument: they never close a session they were given."""
    return Scope(session, options)
