"""Registry identity tokens (OAuth2 refresh tokens, docker's ``identitytoken``) against a real registry.

The token server speaks distribution's OAuth2 flow (``docs/spec/auth/oauth.md``): ``docker login``
gets a refresh token with ``grant_type=password&access_type=offline`` and keeps it in its config as
``identitytoken``; clients then trade it for access tokens with ``grant_type=refresh_token``. mloci
does that for an identity token in the docker config, and ``mloci serve`` for a caller's
``Authorization: Bearer IDENTITY-TOKEN`` — on the pages and at ``/simple/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from auth_fixtures import TokenRegistry
from catalog_helpers import SLOW, serving_process
from helpers import Runner
from pydists import write_wheel

ALICE = ("alice", "wonderland-secret")


def _identity_token(registry: TokenRegistry) -> str:
    """What ``docker login`` stores as ``identitytoken``: a refresh token from the password grant."""
    answer = httpx.post(
        registry.issuer.realm,
        data={
            "grant_type": "password",
            "username": ALICE[0],
            "password": ALICE[1],
            "service": registry.issuer.service,
            "client_id": "docker",
            "access_type": "offline",
        },
        timeout=SLOW,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["access_token"] and body["expires_in"] > 0
    token: str = body["refresh_token"]
    return token


def _exchanges(registry: TokenRegistry) -> list[int]:
    """The statuses of the refresh-token grants the token server answered for alice."""
    return [
        r.status
        for r in registry.issuer.requests_for(ALICE[0])
        if r.method == "POST" and r.grant_type == "refresh_token"
    ]


def _push_as_alice(mloci: Runner, bundle: Path, host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLOCI_USERNAME", ALICE[0])
    monkeypatch.setenv("MLOCI_PASSWORD", ALICE[1])
    pushed = mloci("push", bundle, f"{host}/ml/churn-model", "--json", "-q")
    assert pushed.exit_code == 0, pushed.stderr
    monkeypatch.delenv("MLOCI_USERNAME")
    monkeypatch.delenv("MLOCI_PASSWORD")
    digest: str = json.loads(pushed.stdout)["digest"]
    return digest


def test_the_token_server_refuses_unknown_refresh_tokens(token_registry: TokenRegistry) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": "made-up", "service": "x", "client_id": "t"}
    refused = httpx.post(token_registry.issuer.realm, data=form, timeout=SLOW)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    good = {**form, "refresh_token": _identity_token(token_registry)}
    assert httpx.post(token_registry.issuer.realm, data=good, timeout=SLOW).status_code == 200


def test_an_identity_token_in_the_docker_config_is_exchanged(
    token_registry: TokenRegistry, mloci: Runner, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = token_registry.registry.host
    digest = _push_as_alice(mloci, bundle, host, monkeypatch)
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    token = _identity_token(token_registry)
    config.write_text(json.dumps({"auths": {host: {"auth": "", "identitytoken": token}}}))
    inspected = mloci("inspect", f"{host}/ml/churn-model@{digest}", "--json")
    assert inspected.exit_code == 0, inspected.stderr
    assert token not in inspected.stdout + inspected.stderr
    assert _exchanges(token_registry) and set(_exchanges(token_registry)) == {200}

    config.write_text(json.dumps({"auths": {host: {"identitytoken": "revoked-long-ago"}}}))
    refused = mloci("inspect", f"{host}/ml/churn-model@{digest}", "--json")
    assert refused.exit_code == 5, refused.stderr
    assert "rejected the credentials" in refused.stderr and "revoked" not in refused.stderr


def test_serve_reads_and_uploads_with_a_callers_identity_token(
    token_registry: TokenRegistry,
    mloci: Runner,
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = token_registry.registry.host
    _push_as_alice(mloci, bundle, host, monkeypatch)  # the server itself holds no credentials
    bearer = {"Authorization": f"Bearer {_identity_token(token_registry)}"}
    bogus = {"Authorization": "Bearer not-a-token-the-registry-knows"}
    wheel = write_wheel(tmp_path / "dist")
    form = {":action": "file_upload"}
    files = {"content": (wheel.name, wheel.read_bytes(), "application/octet-stream")}
    args = ("--registry", host, "--namespace", "ml", "--model", "churn-model", "--refresh", "0")
    with serving_process(*args) as url, httpx.Client(base_url=url, timeout=SLOW) as http:
        # Anonymous callers read with the server's credentials: it has none, the registry refuses.
        assert http.get("/models/churn-model").status_code == 401
        page = http.get("/models/churn-model", headers=bearer)
        assert page.status_code == 200, page.text
        assert "churn-model" in page.text and bearer["Authorization"][7:] not in page.text
        assert http.get("/api/v1/models/churn-model", headers=bearer).json()["versions"]

        # The package index: an upload and the reads after it, all with the caller's identity token.
        assert http.post("/", data=form, files=files).status_code == 401
        uploaded = http.post("/", data=form, files=files, headers=bearer)
        assert uploaded.status_code == 200, uploaded.text
        project = http.get("/simple/featurekit/", headers=bearer)
        assert project.status_code == 200 and wheel.name in project.text
        assert http.get("/simple/", headers=bearer).status_code == 200
        assert http.get("/simple/featurekit/").status_code == 401

        for path in ("/models/churn-model", "/api/v1/models/churn-model", "/simple/featurekit/"):
            refused = http.get(path, headers=bogus)
            assert refused.status_code == 401, (path, refused.text)
            assert refused.headers["WWW-Authenticate"].startswith("Basic")
    # The registry traded the caller's identity token for access tokens, with a POST as the spec says.
    assert 200 in _exchanges(token_registry)
    assert all(r.method == "POST" for r in token_registry.issuer.requests if r.grant_type == "refresh_token")
