"""Where artifacts live: one :class:`Store` protocol, a local OCI layout and a remote registry."""

from __future__ import annotations

from dataclasses import dataclass

from mloci import settings
from mloci.store.archive import ArchiveReference, ArchiveStore
from mloci.store.base import Store
from mloci.store.layout import LayoutStore
from mloci.store.registry import RegistryStore, credentials
from mloci.store.registry.locations import BlobLocations
from mloci.types.reference import Reference


@dataclass(frozen=True)
class StoreOptions:
    """How to reach registries; the CLI fills this from flags and environment."""

    plain_http: bool | None = None  # None: HTTPS, except loopback registries that only speak HTTP
    insecure: bool = False
    ca_file: str | None = None
    concurrency: int = 4
    chunk_size: int | None = None  # None: one streamed PATCH per blob


def open_store(ref: Reference, options: StoreOptions | None = None) -> Store:
    """The store ``ref`` lives in: the local OCI layout when it names no registry, else that registry."""
    if isinstance(ref, ArchiveReference):  # oci-archive:PATH (read-only)
        return ArchiveStore(ref.archive)
    if ref.registry is None:
        return LayoutStore(settings.home())
    options = options or StoreOptions()
    registry = ref.registry
    return RegistryStore(
        registry,
        plain_http=options.plain_http,
        insecure=options.insecure,
        ca_file=options.ca_file,
        credentials=lambda: credentials.lookup(registry),
        concurrency=options.concurrency,
        chunk_size=options.chunk_size,
        locations=BlobLocations(settings.home() / "cache" / "blob-locations.sqlite"),
    )


__all__ = ["LayoutStore", "RegistryStore", "Store", "StoreOptions", "open_store"]
