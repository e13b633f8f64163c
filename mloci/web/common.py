"""What the routers share: the catalog in app state, caller credentials, error mapping, caching headers."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from starlette.requests import Request

from mloci.catalog import Catalog
from mloci.catalog.service import credentials_key
from mloci.errors import (
    AuthError,
    ConflictError,
    IntegrityError,
    MlociError,
    NotFoundError,
    PolicyError,
    TimedOutError,
    UnavailableError,
    UnsupportedError,
    UsageError,
)
from mloci.store import open_registry
from mloci.store.registry.auth import Credentials
from mloci.web.secret import random_secret

_AUTH_MEMO_SECONDS: Final = 60.0
_MAX_ACCEPTED: Final = 4096
RETRY_AFTER: Final = 5  # seconds a client should wait before asking again when the registry failed


@dataclass(frozen=True)
class Problem:
    """An error as both pages and the API show it."""

    status: int
    code: str
    message: str
    detail: Any = None
    retry_after: int | None = None  # seconds, for a Retry-After header (503, 504)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


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
    if isinstance(exc, TimedOutError):
        detail = "the registry accepted the connection but did not answer in time; try again shortly"
        return Problem(504, "REGISTRY_TIMEOUT", message, detail, RETRY_AFTER)
    if isinstance(exc, UnavailableError):
        detail = "the registry could not be reached; try again shortly"
        return Problem(503, "REGISTRY_UNAVAILABLE", message, detail, RETRY_AFTER)
    if isinstance(exc, UnsupportedError):
        return Problem(501, "UNSUPPORTED", message)
    if isinstance(exc, IntegrityError):
        return Problem(502, "INTEGRITY", message, "content from the registry failed verification")
    return Problem(502, "REGISTRY_ERROR", message)


def caller_credentials(request: Request) -> Credentials | None:
    """Basic or Bearer credentials the caller sent (for the registry), or None."""
    header = request.headers.get("authorization")
    return Credentials.from_authorization(header) if header else None


@dataclass
class State:
    """Per-application state: the catalog and what the server was started with."""

    catalog: Catalog
    read_only: bool = False
    require_auth: bool = False
    policies: dict[str, Path] = field(default_factory=dict)  # environment → policy file
    secret: bytes = field(default_factory=random_secret, repr=False)  # signs the forms' CSRF tokens
    init_image: str | None = None  # for the version page's init-container snippet
    _accepted: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check_caller(self, request: Request) -> Credentials | None:
        """The caller's credentials, once the registry accepted them (asked again after a minute);
        AuthError for credentials it refuses, or for none at all with ``require_auth``."""
        creds = caller_credentials(request)
        if creds is None:
            if self.require_auth:
                raise AuthError(
                    "this server requires credentials the registry accepts (HTTP Basic or Bearer)"
                )
            return None
        key = credentials_key(creds)
        now = time.monotonic()
        with self._lock:
            if now - self._accepted.get(key, -_AUTH_MEMO_SECONDS) < _AUTH_MEMO_SECONDS:
                return creds
        self.verify(creds)
        with self._lock:
            self._accepted[key] = now
            if len(self._accepted) > _MAX_ACCEPTED:
                self._accepted = {k: t for k, t in self._accepted.items() if now - t < _AUTH_MEMO_SECONDS}
        return creds

    def catalog_for(self, request: Request) -> Catalog:
        """The catalog as the caller sees it: read with their credentials when they sent some, else
        with the server's (AuthError as :meth:`check_caller`)."""
        creds = self.check_caller(request)
        return self.catalog if creds is None else self.catalog.as_caller(creds)

    def verify(self, creds: Credentials) -> None:
        """AuthError unless the registry accepts ``creds`` (``GET /v2/``, answering its challenge)."""
        config = self.catalog.config
        if config.registry is None:
            return  # the local store has no credentials to check
        store = open_registry(
            config.registry, config.options, credentials_override=creds, remember_locations=False
        )
        try:
            store.ping()
        finally:
            store.close()


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
