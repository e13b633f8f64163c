"""HTTP to one registry: scheme and TLS choice, connection reuse, auth retries and error mapping.

Every response the caller does not expect becomes a typed mloci error carrying the
method, the URL without its query (upload URLs carry session state) and the
registry's OCI error codes.
"""

from __future__ import annotations

import builtins
import email.utils
import ipaddress
import random
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    SSLError,
    TimeoutError,
)

from mloci import __version__
from mloci.errors import (
    AuthError,
    IntegrityError,
    MlociError,
    NotFoundError,
    RegistryError,
    TimedOutError,
    UnavailableError,
)
from mloci.store.registry.auth import Authenticator, Credentials
from mloci.types import jsontext
from mloci.types.reference import check_registry_host
from mloci.types.text import escape_controls

USER_AGENT = f"mloci/{__version__}"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF_CAP = 8.0
MAX_RETRY_AFTER = 60.0
# Large socket buffers: the default 16 KiB send blocks cost measurable CPU on multi-GB uploads.
BLOCK_SIZE = 1 << 20
_DOCKER_HUB = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}


def is_loopback(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _printable(text: str, limit: int = 300) -> str:
    """Text from a registry made safe for one terminal line: whitespace runs (newlines too) become one
    space, other control characters are escaped (:func:`escape_controls`), the length is bounded."""
    flat = escape_controls(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _oci_errors(body: bytes) -> tuple[list[str], str]:
    """The OCI error codes and messages of a response body; for a plain-text body, its text as the message."""
    try:
        errors = jsontext.loads(body).get("errors") or []
        codes = [str(e.get("code", "")) for e in errors if isinstance(e, dict)]
        messages = [str(e.get("message", "")) for e in errors if isinstance(e, dict) and e.get("message")]
    except (ValueError, AttributeError, TypeError):
        # Not OCI JSON: registries (and proxies in front of them) often explain in plain text.
        text = body[:4096].decode("utf-8", "replace").strip()
        return [], "" if text.startswith(("<", "{", "[")) else _printable(text)
    return codes, _printable("; ".join(messages))


class Transport:
    """Connection pool and request logic for one registry host."""

    def __init__(
        self,
        registry: str,
        *,
        plain_http: bool | None = None,
        insecure: bool = False,
        ca_file: str | None = None,
        credentials: Credentials | Callable[[], Credentials | None] | None = None,
        concurrency: int = 4,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
    ) -> None:
        # Every way in (references, doctor, index serve, login) ends here: never hand urllib3 a bad host.
        self.registry = check_registry_host(registry)
        self.max_retries = max_retries
        self.backoff = backoff
        self.host = _DOCKER_HUB.get(registry, registry)
        # Like Docker: loopback registries may speak plain HTTP; everything else must be HTTPS.
        self._plain_http = plain_http
        self._scheme: str | None = "http" if plain_http else ("https" if plain_http is False else None)
        if self._scheme is None and not is_loopback(self.host):
            self._scheme = "https"
        self.auth = Authenticator(credentials)
        self._is_registry: bool | None = None  # learnt from GET /v2/ on the first bare 404
        self._probe_status = 0
        pool_kw: dict[str, Any] = {
            "maxsize": max(concurrency, 1) + 2,
            "block": False,
            "timeout": urllib3.Timeout(connect=10.0, read=timeout),
            "retries": urllib3.Retry(
                total=None, connect=2, read=0, status=0, other=0, redirect=5, backoff_factor=0.2
            ),
            "blocksize": BLOCK_SIZE,
            "headers": {"User-Agent": USER_AGENT},
        }
        if insecure:
            pool_kw.update(cert_reqs=ssl.CERT_NONE, assert_hostname=False)
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        else:
            pool_kw["cert_reqs"] = ssl.CERT_REQUIRED
            if ca_file:
                pool_kw["ca_certs"] = ca_file
        self._pool = urllib3.PoolManager(num_pools=4, **pool_kw)

    # -- URLs -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self._resolve_scheme()}://{self.host}"

    def url(self, path_or_url: str) -> str:
        return urljoin(self.base_url + "/", path_or_url)

    def _resolve_scheme(self) -> str:
        if self._scheme is None:
            # Loopback without an explicit choice: use HTTPS when the registry speaks it, else HTTP.
            try:
                self._pool.request("GET", f"https://{self.host}/v2/", retries=False, timeout=5.0)
                self._scheme = "https"
            except SSLError as exc:
                text = str(exc).lower()
                plain = "wrong version number" in text or "record layer" in text or "packet length" in text
                self._scheme = "http" if plain else "https"
            except (NewConnectionError, ProtocolError, HTTPError):
                self._scheme = "http"
        return self._scheme

    # -- requests -------------------------------------------------------------------------------

    def _raw(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        stream: bool,
        timeout: float | None = None,
    ) -> urllib3.BaseHTTPResponse:
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        try:
            return self._pool.request(
                method,
                url,
                headers=dict(headers),
                body=body,
                preload_content=not stream,
                decode_content=False,
                **extra,
            )
        except MaxRetryError as exc:
            raise self._unavailable(exc.reason or exc, url) from None
        except (HTTPError, OSError) as exc:
            raise self._unavailable(exc, url) from None

    def _unavailable(self, exc: BaseException, url: str) -> MlociError:
        where = redact(url)
        if isinstance(exc, NameResolutionError):
            return UnavailableError(
                f"cannot resolve registry host {self.host}", hint="check the reference and DNS"
            )
        if isinstance(exc, SSLError):
            return UnavailableError(
                f"TLS with {self.host} failed: {str(exc).splitlines()[0]}",
                hint="use --ca-file for a private CA, or --insecure to skip checks",
            )
        if isinstance(exc, NewConnectionError | ConnectionRefusedError):
            return UnavailableError(f"cannot connect to registry {self.host} ({where}): connection refused")
        if isinstance(exc, TimeoutError | builtins.TimeoutError):
            return TimedOutError(f"registry {self.host} timed out ({where})", temporary=True)
        # Resets and drops mid-request: the next attempt may well succeed.
        return UnavailableError(
            f"connection to registry {self.host} broke ({where}): {type(exc).__name__}", temporary=True
        )

    def fetch_token(self, url: str, headers: dict[str, str], form: str | None) -> tuple[int, bytes]:
        response = self._raw("POST" if form else "GET", url, headers, form, stream=False)
        return response.status, response.data

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        expect: Collection[int] = (200,),
        stream: bool = False,
        rewind: Callable[[], object] | None = None,
        timeout: float | None = None,
        retry: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """Send a request; answer auth challenges, retry what is retryable, map the rest to errors.

        A body that is a stream is only re-sent when ``rewind`` can reset it; ``retry=False`` leaves
        recovery to the caller (uploads resume from the registry's offset instead).
        """
        url = self.url(path_or_url)
        all_headers = dict(headers or {})
        resendable = body is None or isinstance(body, bytes | str) or rewind is not None
        retries = 0
        challenges = 0
        while True:
            auth = self.auth.header(scope, self.fetch_token) if self.auth.has_challenge else None
            if auth:
                all_headers["Authorization"] = auth
            try:
                response = self._raw(method, url, all_headers, body, stream, timeout)
            except MlociError as exc:
                if not (exc.temporary and retry and resendable and retries < self.max_retries):
                    raise
                retries += 1
                self.pause(retries, None)
                if rewind is not None:
                    rewind()
                continue
            if response.status in expect:
                return response
            status = response.status
            if status == 401 and challenges < 2:
                challenge = response.headers.get("WWW-Authenticate", "")
                response.drain_conn()
                response.release_conn()
                if not challenge:
                    raise AuthError(f"{self.host} refused the request without saying how to authenticate")
                if auth and "insufficient_scope" in challenge:
                    raise AuthError(
                        f"the credentials for {self.host} do not grant {scope or 'access'}",
                        hint="ask for push/pull rights on this repository",
                    )
                # First 401: learn the scheme. A later one: the token expired; fetch a fresh one.
                challenges += 1
                self.auth.forget(scope)
                self.auth.learn(challenge)
                if not resendable:
                    # The streamed body is spent: the caller (an upload) resumes with the new token.
                    raise AuthError(f"{self.host} asked to authenticate again mid-transfer", temporary=True)
                if rewind is not None:
                    rewind()
                continue
            if status in RETRYABLE_STATUS and retry and resendable and retries < self.max_retries:
                retries += 1
                delay = _retry_after(response.headers.get("Retry-After"))
                response.drain_conn()
                response.release_conn()
                self.pause(retries, delay)
                if rewind is not None:
                    rewind()
                continue
            raise self.error(method, url, response)

    def pause(self, attempt: int, suggested: float | None) -> None:
        """Capped exponential backoff with full jitter, or the registry's Retry-After (capped)."""
        if suggested is not None:
            time.sleep(min(suggested, MAX_RETRY_AFTER))
            return
        time.sleep(random.uniform(0, min(BACKOFF_CAP, self.backoff * 2 ** (attempt - 1))))  # noqa: S311

    def error(self, method: str, url: str, response: urllib3.BaseHTTPResponse) -> MlociError:
        body = response.data if response.status != 304 else b""
        response.release_conn()
        codes, detail = _oci_errors(body[:65536])
        status = response.status
        what = f"{method} {redact(url)}"
        detail = f": {detail}" if detail else ""
        if status == 401:
            return AuthError(
                f"not authorized by {self.host}{detail}", hint="run 'mloci login' or check credentials"
            )
        if status == 403:
            return AuthError(
                f"access denied by {self.host} for {what}{detail}", hint="the credentials lack this scope"
            )
        if status == 404:
            if not codes and not self._speaks_distribution(url):
                return RegistryError(
                    f"{self.host} is not an OCI registry: GET {redact(self.url('/v2/'))} answered HTTP "
                    f"{self._probe_status}",
                    hint="check the registry host and port",
                    method=method,
                    url=redact(url),
                    status=status,
                )
            return NotFoundError(f"not found: {what}{detail}")
        if {"DIGEST_INVALID", "SIZE_INVALID"} & set(codes):
            return IntegrityError(f"registry {self.host} rejected the content of {what}{detail}")
        hint = None
        allowed = response.headers.get("Allow")
        if status == 405 and allowed:
            detail += f" (allowed: {_printable(allowed, 80)})"
            if not {"PUT", "POST", "PATCH", "DELETE"} & {m.strip().upper() for m in allowed.split(",")}:
                hint = "the registry is read-only here: maintenance mode, a mirror or a pull-through cache"
        return RegistryError(
            f"registry {self.host} answered HTTP {status} to {what}{detail}",
            hint=hint,
            method=method,
            url=redact(url),
            status=status,
            codes=codes,
            temporary=status in RETRYABLE_STATUS,
        )

    def _speaks_distribution(self, url: str) -> bool:
        """Whether the host answers the distribution API's base endpoint as a registry does (asked once).

        A 404 that carries no OCI error code may be a registry's bare "no such manifest" (HEAD
        has no body) or a web server that is no registry at all; ``GET /v2/`` tells them apart.
        """
        if self._is_registry is None:
            if urlsplit(url).path == "/v2/":
                self._probe_status, self._is_registry = 404, False
                return False
            try:
                probe = self._raw("GET", self.url("/v2/"), {}, None, stream=False)
            except MlociError:
                return True  # cannot tell: keep the answer the registry gave
            self._probe_status = probe.status
            self._is_registry = probe.status in (200, 401) or bool(
                probe.headers.get("Docker-Distribution-API-Version")
            )
        return self._is_registry

    def close(self) -> None:
        self._pool.clear()
