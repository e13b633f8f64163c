"""Where artifacts live: one :class:`Store` protocol, a local OCI layout and a remote registry.

Use cases program against :class:`Store` and ask for optional capabilities
(:class:`ListsRepositories`, :class:`MountsBlobs`, :class:`IngestsFiles`,
:class:`CollectsGarbage`, :class:`StreamsUploads`, :class:`RepairsBlobs`) with ``isinstance``; they get stores from a
:class:`Session`, the one factory that turns :class:`StoreOptions` into stores.
"""

from __future__ import annotations

from mloci.store.base import (
    CollectsGarbage,
    IngestsFiles,
    ListsRepositories,
    MountsBlobs,
    RepairsBlobs,
    Store,
    StreamsUploads,
    Upload,
    read_small_blob,
)
from mloci.store.factory import Session, StoreOptions, open_registry, open_store, scoped
from mloci.store.layout import LayoutStore
from mloci.store.registry import RegistryStore

__all__ = [
    "CollectsGarbage",
    "IngestsFiles",
    "LayoutStore",
    "ListsRepositories",
    "MountsBlobs",
    "RegistryStore",
    "RepairsBlobs",
    "Session",
    "Store",
    "StoreOptions",
    "StreamsUploads",
    "Upload",
    "open_registry",
    "open_store",
    "read_small_blob",
    "scoped",
]
