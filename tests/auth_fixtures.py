"""Pytest plugin: registries behind authentication (htpasswd over TLS, and Docker token auth).

Load it with ``pytest_plugins = ["auth_fixtures"]`` in conftest.py or ``-p auth_fixtures``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from authserver import KeyHeader, Rules, TokenIssuer, make_ca_and_cert, write_htpasswd
from helpers import REGISTRY_BIN, Registry

AUTH_USERS: dict[str, str] = {"alice": "wonderland-secret", "bob": "builder-secret"}
"""Accounts known to both the htpasswd registry and the token server."""

TOKEN_RULES: dict[str, dict[str, list[str]]] = {
    "alice": {"*": ["pull", "push", "delete"]},
    "bob": {"ml/*": ["pull"]},
}
"""Default token grants: alice may do anything anywhere, bob may only pull under ``ml/``."""


@dataclass(frozen=True)
class TLSCerts:
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass
class TLSRegistry:
    """A registry serving HTTPS with htpasswd Basic auth."""

    registry: Registry
    ca_file: Path
    users: dict[str, str]

    @property
    def url(self) -> str:
        return f"https://{self.registry.host}"


@dataclass
class TokenRegistry:
    """A plain-HTTP registry whose clients must fetch Bearer tokens from ``issuer``."""

    registry: Registry
    issuer: TokenIssuer
    users: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://{self.registry.host}"


MakeTokenRegistry = Callable[..., TokenRegistry]


def _require_registry() -> None:
    if REGISTRY_BIN is None:
        pytest.fail("docker-registry is not installed (apt-get install docker-registry)")


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> TLSCerts:
    """A CA and a server certificate for 127.0.0.1/localhost, made once per session."""
    ca, cert, key = make_ca_and_cert(tmp_path_factory.mktemp("tls"))
    return TLSCerts(ca, cert, key)


@pytest.fixture
def tls_registry(tmp_path_factory: pytest.TempPathFactory, tls_certs: TLSCerts) -> Iterator[TLSRegistry]:
    _require_registry()
    workdir = tmp_path_factory.mktemp("tls-registry")
    htpasswd = write_htpasswd(workdir / "htpasswd", AUTH_USERS)
    extra = (
        f"  tls:\n    certificate: {tls_certs.cert_file}\n    key: {tls_certs.key_file}\n"
        f"auth:\n  htpasswd:\n    realm: mloci-test\n    path: {htpasswd}\n"
    )
    registry = Registry(workdir, extra_config=extra)
    registry.start()
    try:
        yield TLSRegistry(registry=registry, ca_file=tls_certs.ca_file, users=dict(AUTH_USERS))
    finally:
        registry.stop()


@pytest.fixture
def make_token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeTokenRegistry]:
    """Factory: ``make_token_registry(token_lifetime=300, anonymous_pull=False, rules=None, key_header="x5c")``.

    Everything it starts is stopped at teardown.
    """
    _require_registry()
    started: list[TokenRegistry] = []

    def make(
        *,
        token_lifetime: int = 300,
        anonymous_pull: bool = False,
        rules: Rules | None = None,
        key_header: KeyHeader = "x5c",
    ) -> TokenRegistry:
        workdir = tmp_path_factory.mktemp("token-registry")
        issuer = TokenIssuer(
            workdir / "issuer",
            users=AUTH_USERS,
            rules=TOKEN_RULES if rules is None else rules,
            anonymous_pull=anonymous_pull,
            token_lifetime=token_lifetime,
            key_header=key_header,
        )
        registry = Registry(workdir, extra_config=issuer.registry_config())
        try:
            registry.start()
        except BaseException:
            registry.stop()
            issuer.close()
            raise
        made = TokenRegistry(registry=registry, issuer=issuer, users=dict(AUTH_USERS))
        started.append(made)
        return made

    try:
        yield make
    finally:
        for made in reversed(started):
            made.registry.stop()
            made.issuer.close()


@pytest.fixture
def token_registry(make_token_registry: MakeTokenRegistry) -> TokenRegistry:
    """A token-auth registry with the default rules, 300 s tokens and no anonymous access."""
    return make_token_registry()
