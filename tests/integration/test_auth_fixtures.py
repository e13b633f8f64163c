"""Smoke tests for the authenticated-registry fixtures, using plain urllib3 (not mloci)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from auth_fixtures import TOKEN_RULES, MakeTokenRegistry, TLSRegistry, TokenRegistry
from authserver import TokenIssuer, decode_jwt, parse_scope

PUSH_SCOPE = "repository:ml/x:pull,push"


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(retries=False)
    try:
        yield pool
    finally:
        pool.clear()


def challenge_params(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    return scheme, dict(re.findall(r'(\w+)="([^"]*)"', rest))


def basic(user: str, password: str) -> dict[str, str]:
    return urllib3.make_headers(basic_auth=f"{user}:{password}")


def fetch_token(
    http: urllib3.PoolManager, issuer: TokenIssuer, scope: str | None, headers: dict[str, str] | None = None
) -> urllib3.BaseHTTPResponse:
    fields = {"service": issuer.service}
    if scope is not None:
        fields["scope"] = scope
    return http.request("GET", issuer.realm, fields=fields, headers=headers or {})


def token_for(http: urllib3.PoolManager, reg: TokenRegistry, user: str | None, scope: str) -> str:
    headers = basic(user, reg.users[user]) if user else None
    response = fetch_token(http, reg.issuer, scope, headers)
    assert response.status == 200, response.data
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == reg.issuer.token_lifetime
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["issued_at"])
    token: str = body["token"]
    return token


def start_upload(
    http: urllib3.PoolManager, reg: TokenRegistry, token: str | None
) -> urllib3.BaseHTTPResponse:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.request("POST", f"{reg.url}/v2/ml/x/blobs/uploads/", headers=headers)


# ----------------------------------------------------------------------------------- htpasswd + TLS


def test_tls_registry_basic_auth(tls_registry: TLSRegistry) -> None:
    pool = urllib3.PoolManager(ca_certs=str(tls_registry.ca_file), retries=False)
    try:
        url = f"{tls_registry.url}/v2/"
        anonymous = pool.request("GET", url)
        assert anonymous.status == 401
        assert challenge_params(anonymous.headers["WWW-Authenticate"]) == ("Basic", {"realm": "mloci-test"})

        assert pool.request("GET", url, headers=basic("alice", tls_registry.users["alice"])).status == 200
        assert pool.request("GET", url, headers=basic("bob", tls_registry.users["bob"])).status == 200
        assert pool.request("GET", url, headers=basic("alice", "wrong")).status == 401
        # localhost is in the certificate too
        local = f"https://localhost:{tls_registry.registry.port}/v2/"
        assert pool.request("GET", local, headers=basic("alice", tls_registry.users["alice"])).status == 200
    finally:
        pool.clear()


def test_tls_registry_rejects_unknown_ca(tls_registry: TLSRegistry, http: urllib3.PoolManager) -> None:
    with pytest.raises(urllib3.exceptions.SSLError):
        http.request("GET", f"{tls_registry.url}/v2/")


# ------------------------------------------------------------------------------------------ tokens


def test_token_registry_challenges_with_bearer(
    token_registry: TokenRegistry, http: urllib3.PoolManager
) -> None:
    response = http.request("GET", f"{token_registry.url}/v2/")
    assert response.status == 401
    scheme, params = challenge_params(response.headers["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params == {"realm": token_registry.issuer.realm, "service": token_registry.issuer.service}

    upload = start_upload(http, token_registry, None)
    assert upload.status == 401
    _, params = challenge_params(upload.headers["WWW-Authenticate"])
    kind, name, actions = params["scope"].split(":")
    assert (kind, name) == ("repository", "ml/x")
    assert sorted(actions.split(",")) == ["pull", "push"]  # distribution orders actions at random


def test_alice_token_allows_push(token_registry: TokenRegistry, http: urllib3.PoolManager) -> None:
    token = token_for(http, token_registry, "alice", PUSH_SCOPE)
    header, claims = decode_jwt(token)
    assert header["alg"] == "RS256"
    assert "x5c" in header
    assert claims["sub"] == "alice"
    assert claims["aud"] == token_registry.issuer.service
    assert claims["iss"] == token_registry.issuer.issuer
    assert claims["access"] == [{"type": "repository", "name": "ml/x", "actions": ["pull", "push"]}]

    assert start_upload(http, token_registry, token).status == 202
    assert (
        http.request("GET", f"{token_registry.url}/v2/", headers={"Authorization": f"Bearer {token}"}).status
        == 200
    )

    (request,) = token_registry.issuer.requests
    assert request.path == "/token"
    assert request.basic_auth
    assert request.username == "alice"
    assert request.scopes == [PUSH_SCOPE]
    assert request.query["service"] == [token_registry.issuer.service]
    assert token_registry.users["alice"] not in repr(token_registry.issuer.requests)


def test_bob_token_lacks_push(token_registry: TokenRegistry, http: urllib3.PoolManager) -> None:
    token = token_for(http, token_registry, "bob", PUSH_SCOPE)
    assert decode_jwt(token)[1]["access"] == [{"type": "repository", "name": "ml/x", "actions": ["pull"]}]

    upload = start_upload(http, token_registry, token)
    assert upload.status in {401, 403}
    _, params = challenge_params(upload.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_scope"

    tags = http.request(
        "GET", f"{token_registry.url}/v2/ml/x/tags/list", headers={"Authorization": f"Bearer {token}"}
    )
    assert tags.status == 404  # authorized to pull; the repository just does not exist

    other = token_for(http, token_registry, "bob", "repository:other/y:pull")
    assert decode_jwt(other)[1]["access"] == [{"type": "repository", "name": "other/y", "actions": []}]


def test_token_server_refuses_bad_or_missing_credentials(
    token_registry: TokenRegistry, http: urllib3.PoolManager
) -> None:
    issuer = token_registry.issuer
    wrong = fetch_token(http, issuer, PUSH_SCOPE, basic("alice", "not-her-password"))
    assert wrong.status == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic ")
    assert fetch_token(http, issuer, PUSH_SCOPE, basic("mallory", "x")).status == 401
    assert fetch_token(http, issuer, PUSH_SCOPE).status == 401  # anonymous not allowed by default
    assert [(r.basic_auth, r.username, r.status) for r in issuer.requests] == [
        (True, "alice", 401),
        (True, "mallory", 401),
        (False, None, 401),
    ]
    assert "not-her-password" not in repr(issuer.requests)


def test_anonymous_pull(make_token_registry: MakeTokenRegistry, http: urllib3.PoolManager) -> None:
    reg = make_token_registry(anonymous_pull=True)
    token = token_for(http, reg, None, PUSH_SCOPE)
    claims = decode_jwt(token)[1]
    assert claims["sub"] == ""
    assert claims["access"] == [{"type": "repository", "name": "ml/x", "actions": ["pull"]}]
    tags = http.request("GET", f"{reg.url}/v2/ml/x/tags/list", headers={"Authorization": f"Bearer {token}"})
    assert tags.status == 404
    assert start_upload(http, reg, token).status == 401
    assert reg.issuer.requests[0].basic_auth is False


def test_expired_token_is_rejected_and_reauth_works(
    make_token_registry: MakeTokenRegistry, http: urllib3.PoolManager
) -> None:
    reg = make_token_registry(token_lifetime=2)
    token = token_for(http, reg, "alice", PUSH_SCOPE)
    assert start_upload(http, reg, token).status == 202
    time.sleep(3)
    expired = start_upload(http, reg, token)
    assert expired.status == 401
    assert challenge_params(expired.headers["WWW-Authenticate"])[1]["error"] == "invalid_token"
    fresh = token_for(http, reg, "alice", PUSH_SCOPE)
    assert start_upload(http, reg, fresh).status == 202
    assert len(reg.issuer.requests_for("alice")) == 2


def test_kid_header_is_accepted(make_token_registry: MakeTokenRegistry, http: urllib3.PoolManager) -> None:
    reg = make_token_registry(key_header="kid")
    token = token_for(http, reg, "alice", PUSH_SCOPE)
    header = decode_jwt(token)[0]
    assert header["kid"] == reg.issuer.key_id
    assert "x5c" not in header
    assert start_upload(http, reg, token).status == 202


def test_token_from_untrusted_signer_is_rejected(
    token_registry: TokenRegistry, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    with TokenIssuer(tmp_path / "rogue", users=token_registry.users, rules=TOKEN_RULES) as rogue:
        response = fetch_token(http, rogue, PUSH_SCOPE, basic("alice", token_registry.users["alice"]))
        assert response.status == 200
        token = response.json()["token"]
    upload = start_upload(http, token_registry, token)
    assert upload.status == 401
    assert challenge_params(upload.headers["WWW-Authenticate"])[1]["error"] == "invalid_token"


def test_scope_parsing_and_grants(tmp_path: Path) -> None:
    assert parse_scope("repository:127.0.0.1:5000/ml/x:pull,push") == (
        "repository",
        "127.0.0.1:5000/ml/x",
        ["pull", "push"],
    )
    assert parse_scope("registry:catalog:*") == ("registry", "catalog", ["*"])
    assert parse_scope("nonsense") is None
    with TokenIssuer(tmp_path, users={}, rules={"bob": {"ml/*": ["pull"]}}) as issuer:
        assert issuer.grant(
            "bob", ["repository:ml/a:pull,push repository:ml/b:push", "registry:catalog:*"]
        ) == [
            {"type": "repository", "name": "ml/a", "actions": ["pull"]},
            {"type": "repository", "name": "ml/b", "actions": []},
        ]
