"""Registry authentication: ``WWW-Authenticate`` challenges, Basic, and the distribution token flow.

Secrets stay inside :class:`Credentials` and the ``Authorization`` header; neither is
ever part of a message, an exception or a repr.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from mloci.errors import AuthError
from mloci.types import jsontext

_TOKEN = re.compile(r"[\x21-\x7e]+")
_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Credentials:
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.username or self.identity_token)

    @classmethod
    def from_authorization(cls, header: str) -> Credentials:
        """The registry credentials an HTTP client sent to a server of ours (``Authorization:
        Basic …``, or ``Bearer …`` with a registry identity token) to pass through; AuthError
        when they cannot be read."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return cls(identity_token=value.strip())
        if scheme.lower() != "basic":
            raise AuthError("only Basic or Bearer credentials are accepted")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise AuthError("malformed Basic credentials") from None
        username, _, password = decoded.partition(":")
        if not username:
            raise AuthError("Basic credentials without a user name")
        return cls(username=username, password=password)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-case: "basic" or "bearer"
    params: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> Challenge | None:
        scheme, _, rest = header.strip().partition(" ")
        if not scheme:
            return None
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PARAM.finditer(rest)
        }
        params = {k: v.replace('\\"', '"') for k, v in params.items()}
        return cls(scheme=scheme.lower(), params=params)


def scope_for(repository: str, actions: str, *also: str) -> str:
    """A token scope; several are joined by spaces (a cross-repository mount needs two)."""
    return " ".join([f"repository:{repository}:{actions}", *also])


# fetch(url, headers, form body or None) -> (status, body): the transport does the HTTP (GET, or POST
# with a body), so the registry's TLS settings apply to the token realm too.
TokenFetcher = Callable[[str, dict[str, str], str | None], tuple[int, bytes]]


class Authenticator:
    """Turns a challenge plus a scope into an ``Authorization`` header, caching tokens per scope."""

    def __init__(self, credentials: Credentials | Callable[[], Credentials | None] | None) -> None:
        # A loader is called only when the registry first challenges: anonymous registries never
        # run credential helpers.
        self._loader = credentials if callable(credentials) else None
        self._credentials = None if callable(credentials) else credentials
        self._challenge: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @property
    def has_challenge(self) -> bool:
        return self._challenge is not None

    def learn(self, header: str) -> None:
        if self._loader is not None:
            self._credentials, self._loader = self._loader(), None
        challenge = Challenge.parse(header)
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            raise AuthError(f"the registry asks for unsupported authentication {header.split(' ', 1)[0]!r}")
        self._challenge = challenge

    def forget(self, scope: str) -> None:
        with self._lock:
            self._tokens.pop(scope, None)

    def header(self, scope: str, fetch: TokenFetcher) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self._credentials
            if not creds or not creds.username:
                raise AuthError(
                    "the registry requires a login",
                    hint="run 'mloci login' or set MLOCI_USERNAME/MLOCI_PASSWORD",
                )
            raw = f"{creds.username}:{creds.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        with self._lock:
            cached = self._tokens.get(scope)
            if cached and cached[1] > time.monotonic():
                return f"Bearer {cached[0]}"
        token, lifetime = self._fetch_token(challenge, scope, fetch)
        with self._lock:
            # Renew a little early so a token never expires between check and use.
            self._tokens[scope] = (token, time.monotonic() + max(lifetime - 10, 1))
        return f"Bearer {token}"

    def _fetch_token(self, challenge: Challenge, scope: str, fetch: TokenFetcher) -> tuple[str, float]:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthError("the registry's token challenge names no realm")
        service = challenge.params.get("service")
        scopes = [("scope", s) for s in scope.split(" ") if s]
        creds = self._credentials
        if creds and creds.identity_token:
            # An identity token is an OAuth2 refresh token: exchange it with a POST, as docker does.
            form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", creds.identity_token),
                ("client_id", "mloci"),
            ]
            form += [("service", service)] if service else []
            status, body = fetch(
                realm, {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(form + scopes)
            )
        else:
            query: list[tuple[str, str]] = [("service", service)] if service else []
            headers: dict[str, str] = {}
            if creds:
                raw = f"{creds.username}:{creds.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
                query.append(("account", creds.username))
            url = realm + ("&" if "?" in realm else "?") + urlencode(query + scopes)
            status, body = fetch(url, headers, None)
        # An unknown or revoked refresh token is OAuth2's 400 invalid_grant (RFC 6749 §5.2).
        if status in (401, 403) or (status == 400 and creds and creds.identity_token):
            raise AuthError(
                "the token service rejected the credentials" if creds else "the registry requires a login",
                hint="check them with 'mloci login'"
                if creds
                else "run 'mloci login' or set MLOCI_USERNAME/MLOCI_PASSWORD",
            )
        if status != 200:
            raise AuthError(f"the token service answered HTTP {status}")
        try:
            document = jsontext.loads(body)
            token = document.get("token") or document.get("access_token")
            lifetime = float(document.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError, RecursionError):
            raise AuthError("the token service answered with something that is not a token") from None
        if not isinstance(token, str) or not token:
            raise AuthError("the token service answered without a token")
        if not _TOKEN.fullmatch(token):
            # It goes into an HTTP header: a newline or a non-ASCII byte would break (or inject into) it.
            raise AuthError("the token service answered with a token that is not printable ASCII")
        return token, lifetime
