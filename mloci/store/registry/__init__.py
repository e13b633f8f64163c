"""The remote registry adapter: distribution API, auth and transport."""

from mloci.store.registry.store import RegistryStore

__all__ = ["RegistryStore"]
