"""Login and logout: check credentials against the registry, then keep them where docker keeps them."""

from __future__ import annotations

from mloci.errors import UsageError
from mloci.store import StoreOptions, open_registry
from mloci.store.registry import credentials
from mloci.store.registry.auth import Credentials
from mloci.types.reference import Reference


def _registry_host(registry: str) -> str:
    host = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    try:
        parsed = Reference.parse(f"{host}/x")
    except UsageError:
        parsed = None
    if parsed is None or parsed.registry != host:
        raise UsageError(f"{registry!r} is not a registry host (e.g. registry.example.com or 127.0.0.1:5000)")
    return host


def login(registry: str, username: str, password: str, *, options: StoreOptions | None = None) -> str:
    """Verify the credentials with ``GET /v2/`` and store them; return where they were stored."""
    host = _registry_host(registry)
    if not username or not password:
        raise UsageError("a username and a password (or token) are required")
    creds = Credentials(username=username, password=password)
    store = open_registry(host, options, credentials_override=creds, remember_locations=False)
    try:
        store.ping()
    finally:
        store.close()
    return credentials.store(host, creds)


def logout(registry: str) -> bool:
    """Forget the stored login for ``registry``; False when there was none."""
    return credentials.remove(_registry_host(registry))
