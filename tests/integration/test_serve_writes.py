"""POST promote/rollback: the caller's credentials only, CSRF protection, policies that name failed rules.

The registry is a real distribution with token auth: alice may push anywhere, bob may only pull
under ml/. The server itself holds alice's credentials (for reads) — and must never use them for a
write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from auth_fixtures import TokenRegistry
from catalog_helpers import SLOW, populate, running_catalog
from helpers import Runner
from pydists import IndexServer, write_wheel

from mloci.catalog import CatalogConfig

ALICE = ("alice", "wonderland-secret")
BOB = ("bob", "builder-secret")
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def served(
    token_registry: TokenRegistry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[IndexServer]:
    monkeypatch.setenv("MLOCI_USERNAME", ALICE[0])  # the server's (and the test's pushes') credentials
    monkeypatch.setenv("MLOCI_PASSWORD", ALICE[1])
    populate(mloci, tmp_path, f"{token_registry.registry.host}/ml/")
    policy = tmp_path / "prod-policy.yaml"
    policy.write_text("metrics: ['auc >= 0.9']\nrequire: [sbom]\n")
    config = CatalogConfig(registry=token_registry.registry.host, namespace="ml", refresh=0)
    with running_catalog(config, policies={"prod": policy}) as server:
        yield server


def environments(http: httpx.Client) -> dict[str, str]:
    model = http.get("/api/v1/models/churn-model").json()["model"]
    return dict(model["environments"])


def test_promote_needs_the_callers_own_credentials(served: IndexServer) -> None:
    with httpx.Client(base_url=served.url, timeout=SLOW) as http:
        before = environments(http)
        anonymous = http.post(
            "/api/v1/models/churn-model/promote", json={"reference": "1.0.0", "to": "staging"}
        )
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert "never used" in anonymous.json()["errors"][0]["message"]

        reader = http.post(
            "/api/v1/models/churn-model/promote", json={"reference": "1.0.0", "to": "staging"}, auth=BOB
        )
        assert reader.status_code in (401, 403), reader.text
        assert environments(http) == before  # nothing moved

        done = http.post(
            "/api/v1/models/churn-model/promote",
            json={"reference": "1.0.0", "to": "staging", "reason": "hotfix"},
            auth=ALICE,
        )
        assert done.status_code == 200, done.text
        assert done.json()["environment"] == "staging" and done.json()["record"]
        assert environments(http)["staging"] == "1.0.0"
        latest = http.get("/api/v1/models/churn-model/history", params={"environment": "staging"}).json()
        assert (latest["history"][0]["actor"], latest["history"][0]["reason"]) == ("alice", "hotfix")

        back = http.post("/api/v1/models/churn-model/rollback", json={"environment": "staging"}, auth=ALICE)
        assert back.status_code == 200, back.text
        assert environments(http)["staging"] == "1.2.0"
        record = http.get("/api/v1/models/churn-model/history").json()["history"][0]
        assert record["rollbackOf"] and record["version"] == "1.2.0"


def test_cross_site_writes_are_refused(served: IndexServer) -> None:
    with httpx.Client(base_url=served.url, auth=ALICE, timeout=SLOW) as http:
        before = environments(http)
        form = http.post("/api/v1/models/churn-model/promote", data={"reference": "1.0.0", "to": "staging"})
        assert form.status_code == 403 and form.json()["errors"][0]["code"] == "CSRF"
        foreign = http.post(
            "/api/v1/models/churn-model/promote",
            json={"reference": "1.0.0", "to": "staging"},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403 and foreign.json()["errors"][0]["code"] == "CSRF"
        fetched = http.post(
            "/api/v1/models/churn-model/promote",
            json={"reference": "1.0.0", "to": "staging"},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert fetched.status_code == 403
        assert environments(http) == before
        same = http.post(
            "/api/v1/models/churn-model/promote",
            json={"reference": "1.0.0", "to": "staging"},
            headers={"Origin": served.url, "Sec-Fetch-Site": "same-origin"},
        )
        assert same.status_code == 200, same.text


def test_policy_refusal_names_every_failed_rule(served: IndexServer) -> None:
    with httpx.Client(base_url=served.url, auth=ALICE, timeout=SLOW) as http:
        refused = http.post("/api/v1/models/churn-model/promote", json={"reference": "1.1.0", "to": "prod"})
        assert refused.status_code == 403, refused.text
        error = refused.json()["errors"][0]
        assert error["code"] == "POLICY_REFUSED"
        rules = [f["rule"] for f in error["detail"]["failed"]]
        assert any("auc" in r for r in rules) and any("sbom" in r for r in rules)
        assert "auc" in error["message"] and "sbom" in error["message"]
        assert environments(http)["prod"] == "1.1.0"


def test_read_only_server_refuses_writes(
    token_registry: TokenRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_USERNAME", ALICE[0])
    monkeypatch.setenv("MLOCI_PASSWORD", ALICE[1])
    config = CatalogConfig(registry=token_registry.registry.host, namespace="ml", refresh=0)
    with running_catalog(config, read_only=True) as server:
        answer = httpx.post(
            f"{server.url}/api/v1/models/churn-model/promote",
            json={"reference": "1.0.0", "to": "x"},
            auth=ALICE,
            timeout=SLOW,
        )
    assert answer.status_code == 403 and answer.json()["errors"][0]["code"] == "READ_ONLY"


def test_require_auth(
    token_registry: TokenRegistry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_USERNAME", ALICE[0])
    monkeypatch.setenv("MLOCI_PASSWORD", ALICE[1])
    populate(mloci, tmp_path, f"{token_registry.registry.host}/ml/")
    # The token service never grants registry:catalog:*, as many registries: name the models.
    config = CatalogConfig(
        registry=token_registry.registry.host,
        namespace="ml",
        refresh=0,
        models=("churn-model", "team/fraud-detector"),
    )
    with (
        running_catalog(config, require_auth=True) as server,
        httpx.Client(base_url=server.url, timeout=SLOW) as http,
    ):
        assert http.get("/api/v1/models").status_code == 401
        page = http.get("/")
        assert page.status_code == 401 and "WWW-Authenticate" in page.headers
        assert http.get("/api/v1/models", auth=("alice", "wrong")).status_code == 401
        assert http.get("/api/v1/models", auth=BOB).json()["total"] == 2
        assert "wonderland" not in http.get("/models/churn-model", auth=BOB).text
        assert http.get("/simple/").status_code == 401  # the package index is covered too
        assert http.get("/simple/", auth=BOB).status_code == 200


def test_anonymous_uploads_never_use_the_servers_credentials(served: IndexServer, tmp_path: Path) -> None:
    wheel = write_wheel(tmp_path / "dist")
    form = {":action": "file_upload"}
    files = {"content": (wheel.name, wheel.read_bytes(), "application/octet-stream")}
    with httpx.Client(base_url=served.url, timeout=SLOW) as http:
        anonymous = http.post("/", data=form, files=files)
        assert anonymous.status_code == 401, anonymous.text
        assert http.get("/simple/featurekit/").status_code == 404  # nothing was published
        uploaded = http.post("/", data=form, files=files, auth=ALICE)
        assert uploaded.status_code == 200, uploaded.text
        assert http.get("/simple/featurekit/").status_code == 200


def test_require_auth_shows_each_caller_what_the_registry_lets_them_read(
    make_token_registry: Callable[..., TokenRegistry],
    mloci: Runner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = {"alice": {"*": ["pull", "push", "delete"]}, "bob": {"ml/churn-model": ["pull"]}}
    registry = make_token_registry(rules=rules)
    monkeypatch.setenv("MLOCI_USERNAME", ALICE[0])
    monkeypatch.setenv("MLOCI_PASSWORD", ALICE[1])
    populate(mloci, tmp_path, f"{registry.registry.host}/ml/")
    config = CatalogConfig(
        registry=registry.registry.host,
        namespace="ml",
        refresh=0,
        models=("churn-model", "team/fraud-detector"),
    )
    with (
        running_catalog(config, require_auth=True) as server,
        httpx.Client(base_url=server.url, timeout=SLOW) as http,
    ):
        names = [m["name"] for m in http.get("/api/v1/models", auth=ALICE).json()["models"]]
        assert names == ["churn-model", "team/fraud-detector"]
        bobs = http.get("/api/v1/models", auth=BOB).json()
        assert [m["name"] for m in bobs["models"]] == ["churn-model"] and bobs["total"] == 1
        assert http.get("/api/v1/models/team/fraud-detector", auth=BOB).status_code == 404
        assert http.get("/models/team/fraud-detector", auth=BOB).status_code == 404
        assert http.get("/api/v1/models/team/fraud-detector/versions/0.3.0", auth=BOB).status_code == 404
        hidden = http.get(
            "/api/v1/diff", params={"a": "churn-model:1.0.0", "b": "team/fraud-detector:0.3.0"}, auth=BOB
        )
        assert hidden.status_code == 404
        assert "fraud" not in http.get("/", auth=BOB).text
        assert http.get("/api/v1/models/team/fraud-detector", auth=ALICE).status_code == 200
