"""Reads as the caller: their credentials when they send some, else the server's; --require-auth;
a cache that never shows a caller what their credentials do not allow; a registry that stalls.

The registries are real distributions: htpasswd over TLS, and token auth with per-user grants.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from auth_fixtures import TLSRegistry, TokenRegistry
from catalog_helpers import SLOW, populate, running_catalog
from cutting_proxy import CuttingProxy
from helpers import Registry, Runner

from mloci.catalog import CatalogConfig
from mloci.store import StoreOptions

ALICE = ("alice", "wonderland-secret")
BOB = ("bob", "builder-secret")
WRONG = ("alice", "not-her-password")


def _populate_as_alice(
    mloci: Runner, tmp_path: Path, host: str, monkeypatch: pytest.MonkeyPatch, ca_file: Path | None = None
) -> dict[str, str]:
    monkeypatch.setenv("MLOCI_USERNAME", ALICE[0])
    monkeypatch.setenv("MLOCI_PASSWORD", ALICE[1])
    if ca_file is not None:
        monkeypatch.setenv("MLOCI_CA_FILE", str(ca_file))
    return populate(mloci, tmp_path, f"{host}/ml/")


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert "wonderland" not in response.text and "not-her-password" not in response.text


def test_reads_use_the_callers_credentials_when_the_server_has_none(
    tls_registry: TLSRegistry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = tls_registry.registry.host
    _populate_as_alice(mloci, tmp_path, host, monkeypatch, tls_registry.ca_file)
    monkeypatch.delenv("MLOCI_USERNAME")  # the server itself holds no credentials at all
    monkeypatch.delenv("MLOCI_PASSWORD")
    options = StoreOptions(ca_file=str(tls_registry.ca_file))
    config = CatalogConfig(registry=host, namespace="ml", refresh=0, options=options)
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        # Anonymous: the server's own reads are refused, and the caller is asked for credentials.
        _refused(http.get("/api/v1/models/churn-model"))
        _refused(http.get("/models/churn-model"))
        # The caller's credentials read everything the registry lets them read.
        listing = http.get("/api/v1/models", auth=ALICE)
        assert listing.status_code == 200, listing.text
        assert [m["name"] for m in listing.json()["models"]] == ["churn-model", "team/fraud-detector"]
        assert listing.headers["Vary"] == "Authorization"
        page = http.get("/models/churn-model", auth=ALICE)
        assert page.status_code == 200 and "better auc" in page.text
        version = http.get("/api/v1/models/churn-model/versions/1.1.0", auth=ALICE).json()
        manifest = http.get(
            f"/api/v1/models/churn-model/manifests/{version['summary']['digest']}", auth=ALICE
        )
        assert manifest.status_code == 200
        assert manifest.headers["Cache-Control"].startswith("private")  # never in a shared cache
        assert http.get("/simple/", auth=ALICE).status_code == 200
        # Wrong credentials: 401 with a challenge, on the pages, the API and the package index.
        for path in ("/", "/api/v1/models", "/models/churn-model", "/simple/"):
            _refused(http.get(path, auth=WRONG))
        # What alice's read put in the cache is not shown to an anonymous caller afterwards.
        _refused(http.get("/api/v1/models/churn-model", auth=None))
        _refused(http.get(f"/api/v1/models/churn-model/manifests/{version['summary']['digest']}"))


def test_require_auth_over_htpasswd(
    tls_registry: TLSRegistry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = tls_registry.registry.host
    _populate_as_alice(mloci, tmp_path, host, monkeypatch, tls_registry.ca_file)  # the server keeps alice's
    options = StoreOptions(ca_file=str(tls_registry.ca_file))
    config = CatalogConfig(registry=host, namespace="ml", refresh=0, options=options)
    with (
        running_catalog(config, require_auth=True) as server,
        httpx.Client(base_url=server.url, timeout=SLOW) as http,
    ):
        for path in ("/", "/api/v1/models", "/models/churn-model", "/simple/", "/packages/"):
            _refused(http.get(path))
            _refused(http.get(path, auth=WRONG))
            assert http.get(path, auth=BOB).status_code == 200, path
        assert http.get("/api/v1/models", auth=BOB).json()["total"] == 2


def test_each_caller_sees_what_their_credentials_allow_and_the_cache_leaks_nothing(
    make_token_registry: Callable[..., TokenRegistry],
    mloci: Runner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = {"alice": {"*": ["pull", "push", "delete"]}, "bob": {"ml/churn-model": ["pull"]}}
    registry = make_token_registry(rules=rules)
    host = registry.registry.host
    _populate_as_alice(mloci, tmp_path, host, monkeypatch)  # and the server reads as alice
    fraud = mloci("inspect", f"{host}/ml/team/fraud-detector:0.3.0", "--json")
    assert fraud.exit_code == 0, fraud.stderr
    fraud_digest = __import__("json").loads(fraud.stdout)["digest"]
    config = CatalogConfig(
        registry=host, namespace="ml", refresh=0, models=("churn-model", "team/fraud-detector")
    )
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        # Anonymous callers read with the server's credentials (and warm the shared cache).
        assert http.get("/api/v1/models").json()["total"] == 2
        assert http.get(f"/api/v1/models/team/fraud-detector/versions/{fraud_digest}").status_code == 200
        # bob reads with his own: the model he may not pull is not there for him.
        bobs = http.get("/api/v1/models", auth=BOB).json()
        assert [m["name"] for m in bobs["models"]] == ["churn-model"]
        assert http.get("/api/v1/models/team/fraud-detector", auth=BOB).status_code == 404
        assert "fraud" not in http.get("/", auth=BOB).text
        # Content by digest is cached for everyone, but only shown where bob's own read finds it.
        assert http.get(f"/api/v1/models/churn-model/versions/{fraud_digest}", auth=BOB).status_code == 404
        assert http.get(f"/api/v1/models/churn-model/manifests/{fraud_digest}", auth=BOB).status_code == 404
        assert http.get(f"/api/v1/models/churn-model/manifests/{fraud_digest}").status_code == 404
        assert http.get("/models/churn-model", auth=BOB).status_code == 200
        assert http.get("/api/v1/models", auth=ALICE).json()["total"] == 2


def test_a_stalled_registry_fails_the_page_in_seconds(
    registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    proxy = CuttingProxy(("127.0.0.1", registry.port or 0))
    try:
        options = StoreOptions(timeout=1.0, retries=1)
        config = CatalogConfig(registry=proxy.host, namespace="ml", refresh=0, options=options)
        with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
            assert http.get("/models/churn-model").status_code == 200
            proxy.stall()  # connections stay open; the registry never answers again
            started = time.monotonic()
            page = http.get("/models/churn-model")
            page_seconds = time.monotonic() - started
            started = time.monotonic()
            api = http.get("/api/v1/models/churn-model")
            api_seconds = time.monotonic() - started
    finally:
        proxy.close()
    print(f"stalled registry: page answered in {page_seconds:.1f} s, API in {api_seconds:.1f} s")
    # A registry that accepted the connection but never answered: a gateway timeout, retry later.
    assert page.status_code == 504, page.text
    assert "timed out" in page.text and proxy.host in page.text and "Traceback" not in page.text
    assert "Registry timed out" in page.text and page.headers["Retry-After"] == "5"
    assert api.status_code == 504 and api.headers["Retry-After"] == "5"
    error = api.json()["errors"][0]
    assert error["code"] == "REGISTRY_TIMEOUT" and "timed out" in error["message"]
    assert page_seconds < 15 and api_seconds < 15


def test_local_store_writes_as_the_server_user(
    mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(mloci, tmp_path, "")
    monkeypatch.setenv("MLOCI_ACTOR", "server-user")
    body = {"reference": "1.0.0", "to": "staging"}
    with (
        running_catalog(CatalogConfig(refresh=0)) as server,
        httpx.Client(base_url=server.url, timeout=SLOW) as http,
    ):
        done = http.post("/api/v1/models/churn-model/promote", json=body, auth=BOB)
        assert done.status_code == 200, done.text
        latest = http.get("/api/v1/models/churn-model/history").json()["history"][0]
    # The local store checks no credentials: a name the caller merely claims is never recorded.
    assert latest["actor"] == "server-user" and latest["version"] == "1.0.0"


def test_require_auth_needs_a_registry(mloci: Runner) -> None:
    result = mloci("serve", "--require-auth", "--port", "0")
    assert result.exit_code == 2, result.stderr
    assert "--require-auth needs --registry" in result.stderr and "Traceback" not in result.stderr
