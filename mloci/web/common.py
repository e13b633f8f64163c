"""What the routers share: the catalog in app state, caller credentials, error mapping, caching headers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from starlette.requests import Request

from mloci.catalog import Catalog
from mloci.errors import (
    AuthError,
    ConflictError,
    IntegrityError,
    MlociError,
    NotFoundError,
    PolicyError,
    UnavailableError,
    UnsupportedError,
    UsageError,
)
from mloci.store import Store, open_registry
from mloci.store.registry.auth import Credentials

_AUTH_MEMO_SECONDS: Final = 60.0
_MAX_CALLER_STORES: Final = 64


@dataclass(frozen=True)
class Problem:
    """An error as both pages and the API show it."""

    status: int
    code: str
    message: str
    detail: Any = None


class PolicyRefused(PolicyError):
    """A promotion the environment's policy refused, with every failed rule."""

    def __init__(self, message: str, failures: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.failures = failures


class Forbidden(MlociError):
    """A request the server itself refuses (read-only, cross-site)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def problem(exc: MlociError) -> Problem:
    message = str(exc)
    if isinstance(exc, PolicyRefused):
        return Problem(403, "POLICY_REFUSED", message, {"failed": exc.failures})
    if isinstance(exc, Forbidden):
        return Problem(403, exc.code, message)
    if isinstance(exc, NotFoundError):
        return Problem(404, "NOT_FOUND", message)
    if isinstance(exc, AuthError):
        return Problem(401, "UNAUTHORIZED", message)
    if isinstance(exc, PolicyError):
        return Problem(403, "POLICY_REFUSED", message)
    if isinstance(exc, ConflictError):
        return Problem(409, "CONFLICT", message)
    if isinstance(exc, UsageError):
        return Problem(400, "BAD_REQUEST", message)
    if isinstance(exc, UnavailableError):
        return Problem(503, "REGISTRY_UNAVAILABLE", message, "the registry did not answer; try again shortly")
    if isinstance(exc, UnsupportedError):
        return Problem(501, "UNSUPPORTED", message)
    if isinstance(exc, IntegrityError):
        return Problem(502, "INTEGRITY", message, "content from the registry failed verification")
    return Problem(502, "REGISTRY_ERROR", message)


def caller_credentials(request: Request) -> Credentials | None:
    """Basic or Bearer credentials the caller sent (for the registry), or None."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credentials(identity_token=value.strip())
    if scheme.lower() != "basic":
        raise AuthError("only Basic or Bearer credentials are accepted")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError("malformed Basic credentials") from None
    username, _, password = decoded.partition(":")
    if not username:
        raise AuthError("Basic credentials without a user name")
    return Credentials(username=username, password=password)


@dataclass
class State:
    """Per-application state: the catalog and what the server was started with."""

    catalog: Catalog
    read_only: bool = False
    require_auth: bool = False
    policies: dict[str, Path] = field(default_factory=dict)  # environment → policy file
    _accepted: dict[str, float] = field(default_factory=dict)
    _readable: dict[tuple[str, str], tuple[float, bool]] = field(default_factory=dict)
    _stores: dict[str, Store] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check_caller(self, request: Request) -> Credentials | None:
        """The caller's credentials; with ``require_auth``, AuthError unless the registry accepts them."""
        creds = caller_credentials(request)
        if not self.require_auth:
            return creds
        if creds is None:
            raise AuthError("this server requires credentials the registry accepts (HTTP Basic or Bearer)")
        key = _key(creds)
        now = time.monotonic()
        with self._lock:
            if now - self._accepted.get(key, -_AUTH_MEMO_SECONDS) < _AUTH_MEMO_SECONDS:
                return creds
        self.verify(creds)
        with self._lock:
            self._accepted[key] = now
        return creds

    def reader(self, request: Request) -> Callable[[str], bool] | None:
        """With ``require_auth``: which repositories the caller's credentials may read (asked of the
        registry, remembered for a minute); None when everything shown is readable."""
        creds = self.check_caller(request)
        if creds is None or not self.require_auth or self.catalog.config.registry is None:
            return None
        key = _key(creds)

        def can_read(repository: str) -> bool:
            now = time.monotonic()
            with self._lock:
                known = self._readable.get((key, repository))
            if known is not None and now - known[0] < _AUTH_MEMO_SECONDS:
                return known[1]
            store = self._store_for(key, creds)
            try:
                store.list_tags(repository)
                allowed = True
            except (AuthError, NotFoundError):
                allowed = False
            with self._lock:
                self._readable[(key, repository)] = (now, allowed)
            return allowed

        return can_read

    def ensure_readable(self, request: Request, *names: str) -> None:
        """NotFoundError (never a hint that it exists) when the caller may not read a model."""
        can_read = self.reader(request)
        if can_read is None:
            return
        for name in names:
            if not can_read(self.catalog.config.repository(name).repository):
                raise NotFoundError(f"no model named {name!r}")

    def _store_for(self, key: str, creds: Credentials) -> Store:
        with self._lock:
            store = self._stores.get(key)
            if store is None:
                registry = self.catalog.config.registry or ""
                store = self._stores[key] = open_registry(
                    registry,
                    self.catalog.config.options,
                    credentials_override=creds,
                    remember_locations=False,
                )
                if len(self._stores) > _MAX_CALLER_STORES:
                    oldest = next(iter(self._stores))
                    self._stores.pop(oldest).close()
            return store

    def close(self) -> None:
        with self._lock:
            stores = list(self._stores.values())
            self._stores.clear()
        for store in stores:
            store.close()

    def verify(self, creds: Credentials) -> None:
        """AuthError unless the registry accepts ``creds`` for reading the catalog's namespace."""
        config = self.catalog.config
        if config.registry is None:
            return  # the local store has no credentials to check
        store = open_registry(
            config.registry, config.options, credentials_override=creds, remember_locations=False
        )
        try:
            store.ping()
            names = self.catalog.repositories()
            if names:
                store.list_tags(names[0])
        finally:
            store.close()


def _key(creds: Credentials) -> str:
    return hashlib.sha256(f"{creds.username}\0{creds.password}\0{creds.identity_token}".encode()).hexdigest()


def state_of(request: Request) -> State:
    value: State = request.app.state.mloci
    return value


def etag_for(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def not_modified(request: Request, etag: str) -> bool:
    sent = request.headers.get("if-none-match")
    if not sent:
        return False
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in sent.split(","))
