"""Authentication helpers for tests: a throw-away PKI, bcrypt htpasswd files and a Docker token server.

The token server follows the distribution token authentication spec (``docs/spec/auth/token.md`` and
``jwt.md``): ``GET /token?service=..&scope=..&account=..`` with optional HTTP Basic credentials answers
``{"token", "access_token", "expires_in", "issued_at"}``, the token being an RS256 JWT whose claims carry
``iss``/``sub``/``aud``/``exp``/``nbf``/``iat``/``jti`` and the granted ``access`` list. ``POST /token``
with a form body is the OAuth2 flow of ``docs/spec/auth/oauth.md``: ``grant_type=password`` (with
``access_type=offline`` it also answers a ``refresh_token`` — docker's identity token) and
``grant_type=refresh_token``.

How distribution 2.8 (``registry/auth/token``) verifies such a token, and what follows here:

* ``iss`` must equal the configured ``issuer`` and ``aud`` the configured ``service``.
* The signing key comes from the JOSE header, tried in this order: ``x5c`` (a chain of standard-base64
  DER certificates, leaf first, verified against ``rootcertbundle`` with any extended key usage), then
  ``jwk``, then ``kid`` (a libtrust fingerprint looked up among the *public keys of the certificates in
  the bundle* — so with ``kid`` the signing certificate itself must be in the bundle).
* ``exp`` and ``nbf`` are checked with a hard-coded 60 s leeway. A token whose ``exp`` is ``iat + 2`` is
  therefore accepted for 62 s. To make short lifetimes testable, :class:`TokenIssuer` by default writes
  ``exp = iat + lifetime - 60`` into the JWT while still reporting ``expires_in = lifetime``, so the
  registry rejects the token ``lifetime`` seconds after it was issued.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import ipaddress
import json
import secrets
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REGISTRY_LEEWAY = 60
"""Seconds of clock-skew leeway distribution 2.8 adds to ``exp`` (and subtracts from ``nbf``)."""

Rules = Mapping[str, Mapping[str, Sequence[str]]]
"""``{account: {repository glob: [actions]}}``; ``"*"`` as an action grants every requested action."""

KeyHeader = Literal["x5c", "kid"]

_FORM = "application/x-www-form-urlencoded"


# --------------------------------------------------------------------------------------------- PKI


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mloci tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_cert(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = _name(common_name)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf_cert(
    key: rsa.RSAPrivateKey,
    common_name: str,
    ca_key: rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    *,
    server: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=server,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca_and_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1 (IP SAN) and localhost (DNS SAN).

    Returns ``(ca_pem_path, cert_pem_path, key_pem_path)``, all PEM files inside ``directory``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca = _ca_cert(ca_key, "mloci test CA")
    key = _new_key()
    cert = _leaf_cert(key, "127.0.0.1", ca_key, ca, server=True)
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server-key.pem",
    )
    ca_path.write_bytes(_pem(ca))
    cert_path.write_bytes(_pem(cert))
    key_path.write_bytes(_key_pem(key))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def write_htpasswd(path: Path, users: Mapping[str, str], *, rounds: int = 5) -> Path:
    """Write bcrypt ``user:$2y$...`` lines, the only format distribution's htpasswd backend accepts.

    The registry runs bcrypt on every request, so tests use a low cost factor (``rounds``).
    """
    lines = []
    for user, password in users.items():
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
        lines.append(f"{user}:$2y${hashed[4:]}")  # Apache's prefix; Go's bcrypt accepts 2a/2b/2y alike
    path.write_text("\n".join(lines) + "\n")
    return path


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """The libtrust fingerprint distribution expects in a JWT ``kid``.

    SHA-256 of the DER SubjectPublicKeyInfo, truncated to 240 bits, base32, 12 groups of 4 joined by ':'.
    """
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode_jwt(token: str) -> tuple[dict[str, object], dict[str, object]]:
    """``(header, claims)`` of a compact JWT, without verifying it (for assertions in tests)."""
    header, claims, _signature = token.split(".")

    def part(text: str) -> dict[str, object]:
        value: dict[str, object] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return value

    return part(header), part(claims)


# ------------------------------------------------------------------------------------ token server


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server saw. The password is never recorded."""

    method: str
    path: str
    query: dict[str, list[str]]
    basic_auth: bool
    username: str | None
    status: int
    granted: list[dict[str, object]] = field(default_factory=list)
    grant_type: str | None = None  # an OAuth2 POST's grant_type ("password", "refresh_token"); None for GET

    @property
    def scopes(self) -> list[str]:
        return self.query.get("scope", [])


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """``"repository:ml/x:pull,push"`` → ``("repository", "ml/x", ["pull", "push"])``.

    The name may itself contain ':' (``repository:host:5000/x:pull``), so type is split from the left and
    actions from the right.
    """
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    return kind, name, [a for a in actions.split(",") if a]


class _IssuerServer(ThreadingHTTPServer):
    request_queue_size = 128  # every store of a test may fetch tokens at once (the default is 5)


class TokenIssuer:
    """A Docker/distribution token server on 127.0.0.1 in a background thread.

    ``rules`` maps an account to ``{repository glob: actions}`` (``fnmatch`` on the repository name).
    An anonymous request (no Basic credentials) is refused with 401 unless ``anonymous_pull`` is set, in
    which case it gets ``pull`` on every repository. Wrong credentials always get 401. Granted access is
    the intersection of what was asked for and what the rules allow; asking for more is not an error.

    ``key_header`` chooses how the token names its signing key: ``"x5c"`` (the signing certificate in the
    header, chained to the CA in the bundle) or ``"kid"`` (a libtrust key id; the signing certificate is
    then added to the bundle, since distribution looks ``kid`` up among the bundle's own keys).
    """

    def __init__(
        self,
        directory: Path,
        *,
        users: Mapping[str, str],
        rules: Rules,
        anonymous_pull: bool = False,
        token_lifetime: int = 300,
        service: str = "mloci-test-registry",
        issuer: str = "mloci-test-issuer",
        key_header: KeyHeader = "x5c",
        compensate_leeway: bool = True,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.directory = directory
        self.users = dict(users)
        self.rules = {account: dict(grants) for account, grants in rules.items()}
        self.anonymous_pull = anonymous_pull
        self.token_lifetime = token_lifetime
        self.service = service
        self.issuer = issuer
        self.key_header: KeyHeader = key_header
        self.compensate_leeway = compensate_leeway
        self.requests: list[TokenRequest] = []
        self.refresh_tokens: dict[str, str] = {}  # OAuth2 refresh token (docker's identity token) → account
        self._lock = threading.Lock()

        directory.mkdir(parents=True, exist_ok=True)
        ca_key = _new_key()
        ca = _ca_cert(ca_key, "mloci token signing CA")
        self._signing_key = _new_key()
        self._signing_cert = _leaf_cert(self._signing_key, "mloci token signer", ca_key, ca, server=False)
        self.rootcertbundle = directory / "token-rootcerts.pem"
        bundle = _pem(ca) + (_pem(self._signing_cert) if key_header == "kid" else b"")
        self.rootcertbundle.write_bytes(bundle)
        self.key_id = libtrust_key_id(self._signing_key.public_key())

        self._server = _IssuerServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            scheme = "https"
        # serve_forever's accept() must never block: a connection the kernel dropped between select()
        # and accept() (a burst of clients) would otherwise hang shutdown() at teardown forever.
        self._server.socket.settimeout(1.0)
        self.port: int = self._server.server_address[1]
        self.realm = f"{scheme}://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-issuer", daemon=True)
        self._thread.start()

    # -- configuration ---------------------------------------------------------------------------

    def registry_config(self, service: str | None = None, issuer: str | None = None) -> str:
        """The top-level ``auth:`` YAML block for a registry that trusts this issuer."""
        return (
            "auth:\n  token:\n"
            f"    realm: {self.realm}\n"
            f"    service: {service or self.service}\n"
            f"    issuer: {issuer or self.issuer}\n"
            f"    rootcertbundle: {self.rootcertbundle}\n"
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> TokenIssuer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- behaviour -------------------------------------------------------------------------------

    def requests_for(self, username: str | None) -> list[TokenRequest]:
        with self._lock:
            return [r for r in self.requests if r.username == username]

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def authenticate(self, username: str, password: str) -> bool:
        expected = self.users.get(username)
        return expected is not None and secrets.compare_digest(expected.encode(), password.encode())

    def allowed_actions(self, account: str | None, repository: str) -> set[str]:
        if account is None:
            return {"pull"} if self.anonymous_pull else set()
        allowed: set[str] = set()
        for pattern, actions in self.rules.get(account, {}).items():
            if fnmatch.fnmatchcase(repository, pattern):
                allowed.update(actions)
        return allowed

    def grant(self, account: str | None, scopes: Sequence[str]) -> list[dict[str, object]]:
        merged: dict[tuple[str, str], list[str]] = {}
        for text in scopes:
            for one in text.split(" "):
                parsed = parse_scope(one)
                if parsed is None:
                    continue
                kind, name, wanted = parsed
                if kind != "repository":
                    continue  # no rules for registry:catalog:* and friends: never granted
                allowed = self.allowed_actions(account, name)
                actions = merged.setdefault((kind, name), [])
                for action in wanted:
                    if (action in allowed or "*" in allowed) and action not in actions:
                        actions.append(action)
        return [{"type": kind, "name": name, "actions": actions} for (kind, name), actions in merged.items()]

    def new_refresh_token(self, account: str) -> str:
        """A long-lived OAuth2 refresh token for ``account`` (what ``docker login`` keeps as ``identitytoken``)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.refresh_tokens[token] = account
        return token

    def account_of(self, refresh_token: str) -> str | None:
        with self._lock:
            return self.refresh_tokens.get(refresh_token)

    def issue(self, account: str | None, service: str, access: list[dict[str, object]]) -> dict[str, object]:
        now = int(time.time())
        expiry = now + self.token_lifetime - (REGISTRY_LEEWAY if self.compensate_leeway else 0)
        header: dict[str, object] = {"typ": "JWT", "alg": "RS256"}
        if self.key_header == "x5c":
            der = self._signing_cert.public_bytes(serialization.Encoding.DER)
            header["x5c"] = [base64.b64encode(der).decode()]
        else:
            header["kid"] = self.key_id
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": service,
            "exp": expiry,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": access,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._signing_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{signing_input}.{_b64url(signature)}"
        issued_at = dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z")
        return {
            "token": token,
            "access_token": token,
            "expires_in": self.token_lifetime,
            "issued_at": issued_at,
        }


def _handler_for(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mloci-test-token/1"

        def log_message(self, format: str, *args: object) -> None:
            return  # keep test output clean; requests are recorded on the issuer instead

        def _reply(
            self, status: int, body: Mapping[str, object], headers: Mapping[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _credentials(self) -> tuple[bool, str | None, str | None]:
            """(Basic presented, username, password) — the password stays local to this request."""
            scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "basic":
                return False, None, None
            try:
                username, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return True, None, None
            return True, username, password

        def _handle(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            presented, username, password = self._credentials()

            def record(status: int, granted: list[dict[str, object]] | None = None) -> None:
                issuer._record(
                    TokenRequest(
                        method=self.command,
                        path=url.path,
                        query=query,
                        basic_auth=presented,
                        username=username,
                        status=status,
                        granted=granted or [],
                    )
                )

            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if self.command == "POST" and url.path == "/token" and content_type == _FORM:
                self._oauth2()
                return

            if self.command != "GET" or url.path != "/token":
                record(404 if self.command == "GET" else 405)
                self._reply(404 if self.command == "GET" else 405, {"error": "not found"})
                return
            challenge = {"WWW-Authenticate": 'Basic realm="mloci-test-token"'}
            if presented and (
                username is None or password is None or not issuer.authenticate(username, password)
            ):
                record(401)
                self._reply(401, {"error": "invalid credentials"}, challenge)
                return
            if not presented and not issuer.anonymous_pull:
                record(401)
                self._reply(401, {"error": "authentication required"}, challenge)
                return
            account = username if presented else None
            service = (query.get("service") or [issuer.service])[0]
            access = issuer.grant(account, query.get("scope", []))
            record(200, access)
            self._reply(200, issuer.issue(account, service, access))

        def _oauth2(self) -> None:
            """``POST /token`` as distribution's ``docs/spec/auth/oauth.md`` describes: grant_type
            ``password`` (``username``/``password``; ``access_type=offline`` adds a ``refresh_token``)
            or ``refresh_token``; ``service`` and ``client_id`` are required. Errors follow RFC 6749 §5.2."""
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)

            def one(name: str) -> str:
                return (form.get(name) or [""])[0]

            grant_type = one("grant_type")
            recorded = {k: v for k, v in form.items() if k not in ("password", "refresh_token")}

            def record(
                status: int, account: str | None, granted: list[dict[str, object]] | None = None
            ) -> None:
                issuer._record(
                    TokenRequest(
                        method="POST",
                        path="/token",
                        query=recorded,
                        basic_auth=False,
                        username=account,
                        status=status,
                        granted=granted or [],
                        grant_type=grant_type,
                    )
                )

            def refuse(status: int, error: str, account: str | None = None) -> None:
                record(status, account)
                self._reply(status, {"error": error})

            if not one("service") or not one("client_id"):
                refuse(400, "invalid_request")
                return
            refresh_token: str | None = None
            if grant_type == "password":
                account: str | None = one("username")
                if not account or not issuer.authenticate(account, one("password")):
                    refuse(401, "invalid_client", account or None)
                    return
                if one("access_type") == "offline":
                    refresh_token = issuer.new_refresh_token(account)
            elif grant_type == "refresh_token":
                account = issuer.account_of(one("refresh_token"))
                if account is None:
                    refuse(400, "invalid_grant")
                    return
            else:
                refuse(400, "unsupported_grant_type")
                return
            scopes = form.get("scope", [])
            access = issuer.grant(account, scopes)
            record(200, account, access)
            issued = issuer.issue(account, one("service"), access)
            body: dict[str, object] = {
                "access_token": issued["access_token"],
                "scope": " ".join(scopes),
                "expires_in": issued["expires_in"],
                "issued_at": issued["issued_at"],
            }
            if refresh_token is not None:
                body["refresh_token"] = refresh_token
            self._reply(200, body)

        do_GET = _handle
        do_POST = _handle

    return Handler
