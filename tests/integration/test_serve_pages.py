"""The catalog pages: every page renders, registry text is inert (XSS), a vanished registry is a clear error."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from catalog_helpers import SLOW, attach_trust, model_version, populate, running_catalog
from cutting_proxy import CuttingProxy
from helpers import Registry, Runner
from pydists import IndexServer

from mloci.catalog import CatalogConfig

SCRIPT = "<script>alert('x')</script>"


@pytest.fixture
def served(registry: Registry, mloci: Runner, tmp_path: Path) -> Iterator[IndexServer]:
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    with running_catalog(CatalogConfig(registry=registry.host, namespace="ml", refresh=0)) as server:
        yield server


def test_every_page_renders(served: IndexServer) -> None:
    with httpx.Client(base_url=served.url, timeout=SLOW) as http:
        home = http.get("/")
        assert home.status_code == 200
        assert "default-src 'none'" in home.headers["content-security-policy"]
        assert home.headers["x-content-type-options"] == "nosniff"
        assert 'href="/models/churn-model"' in home.text and 'href="/models/team/fraud-detector"' in home.text
        assert "<script" not in home.text.lower()  # the pages need no JavaScript

        search = http.get("/", params={"q": "auc>0.9"})
        assert "churn-model" in search.text and "fraud-detector" not in search.text

        model = http.get("/models/churn-model")
        assert model.status_code == 200
        assert model.text.count("<svg") == 2  # auc and f1 across the versions
        assert model.text.count("<circle") == 6
        assert "better auc" in model.text and "1.0.0 → <b>1.1.0</b>" in model.text

        version = http.get("/models/churn-model/versions/1.1.0")
        assert version.status_code == 200
        assert re.search(r"mloci pull 127\.0\.0\.1:\d+/ml/churn-model@sha256:[0-9a-f]{64}", version.text)
        assert "promotion record" in version.text

        nested = http.get("/models/team/fraud-detector")
        assert nested.status_code == 200 and "Card fraud scores." in nested.text

        compare = http.get("/compare", params={"a": "churn-model:1.0.0", "b": "churn-model:1.2.0"})
        assert compare.status_code == 200 and "+0.12" in compare.text

        assert http.get("/packages/").status_code == 200
        assert http.get("/static/style.css").headers["content-type"].startswith("text/css")

        missing = http.get("/models/no-such-model")
        assert missing.status_code == 404 and "no model named" in missing.text


def test_registry_text_renders_inert(registry: Registry, mloci: Runner, tmp_path: Path) -> None:
    bundle = model_version(
        tmp_path,
        "1.0.0",
        {"auc": 0.9, f"{SCRIPT}metric": 0.5},
        description=f"{SCRIPT} <img src=x onerror=alert(1)>",
        intended_use='"><script>alert(2)</script>',
        features=[SCRIPT],
        lineage={"datasets": [{"uri": "javascript:alert(3)"}], "training_run": "javascript:alert(4)"},
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.pop("files")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (bundle / "<script>alert(5)<").mkdir()
    (bundle / "<script>alert(5)<" / "<img src=x onerror=alert(6)>.txt").write_text("hello")
    base = f"{registry.host}/ml/evil"
    pushed = mloci("push", bundle, base, "-q")
    assert pushed.exit_code == 0, pushed.stderr
    assert mloci("promote", f"{base}:1.0.0", "--to", "prod", "--reason", SCRIPT).exit_code == 0
    with running_catalog(CatalogConfig(registry=registry.host, namespace="ml", refresh=0)) as server:
        pages = [
            httpx.get(f"{server.url}{path}", timeout=SLOW)
            for path in (
                "/",
                "/models/evil",
                "/models/evil/versions/1.0.0",
                "/compare?a=evil:1.0.0&b=evil:prod",
                f"/?q={SCRIPT}",
            )
        ]
    for page in pages:
        assert page.status_code == 200, page.text
        body = page.text.lower()
        assert "<script" not in body
        assert "<img" not in body
        assert 'href="javascript:' not in body
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in pages[1].text  # shown, as text
    assert "&lt;img src=x onerror=alert(6)&gt;.txt" in pages[2].text
    assert "javascript:alert(4)" in pages[2].text  # shown as text, never a link


def test_registry_going_away_is_a_clear_error_page(registry: Registry, mloci: Runner, tmp_path: Path) -> None:
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    with running_catalog(CatalogConfig(registry=registry.host, namespace="ml", refresh=0)) as server:
        assert httpx.get(f"{server.url}/models/churn-model", timeout=SLOW).status_code == 200
        registry.stop()
        page = httpx.get(f"{server.url}/models/churn-model", timeout=SLOW)
        api = httpx.get(f"{server.url}/api/v1/models", timeout=SLOW)
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    assert "Registry unavailable" in page.text and registry.host in page.text
    assert "Traceback" not in page.text
    assert api.status_code == 503 and api.headers["Retry-After"] == "5"
    assert api.json()["errors"][0]["code"] == "REGISTRY_UNAVAILABLE"


def test_registry_cut_mid_request_is_a_clear_error_page(
    registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    proxy = CuttingProxy(("127.0.0.1", registry.port or 0))
    try:
        config = CatalogConfig(registry=proxy.host, namespace="ml", refresh=0)
        with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
            assert http.get("/models/churn-model").status_code == 200
            proxy.cut_after(300)  # the next answers stop a few hundred bytes in
            page = http.get("/models/churn-model/versions/1.0.0")
            api = http.get("/api/v1/models/churn-model")
            proxy.cut_after(0)
            listing = http.get("/")
    finally:
        proxy.close()
    for response in (page, listing):
        assert response.status_code in (502, 503), response.text
        assert "Traceback" not in response.text and proxy.host in response.text
        assert "<script" not in response.text.lower()
    assert api.status_code in (502, 503)
    assert api.json()["errors"][0]["code"] in ("REGISTRY_UNAVAILABLE", "REGISTRY_ERROR")


def test_version_page_verifies_signatures_and_shows_badges(
    registry: Registry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    attach_trust(mloci, tmp_path, f"{registry.host}/ml/churn-model:1.2.0", monkeypatch)
    assert mloci("keygen", "--output-key-prefix", tmp_path / "stranger").exit_code == 0
    keys = (tmp_path / "signing.pub", tmp_path / "stranger.pub")
    config = CatalogConfig(registry=registry.host, namespace="ml", refresh=0, verify_keys=keys)
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        detail = http.get("/api/v1/models/churn-model/versions/1.2.0").json()
        assert detail["summary"]["badges"] == {
            "signed": True,
            "sbom": True,
            "provenance": True,
            "tests": True,
        }
        assert [(s["key"], s["verified"]) for s in detail["signatures"]] == [
            ("signing.pub", True),
            ("stranger.pub", False),
        ]
        kinds = {r["kind"] for r in detail["referrers"]}
        provenance = "attestation: sigstore bundle (https://slsa.dev/provenance/v1)"  # attest's default
        assert {"sbom: CycloneDX", provenance, "test results", "promotion record"} <= kinds
        unsigned = http.get("/api/v1/models/churn-model/versions/1.1.0").json()
        assert [s["verified"] for s in unsigned["signatures"]] == [False, False]
        assert "not signed" in unsigned["signatures"][0]["detail"]
        page = http.get("/models/churn-model/versions/1.2.0").text
        assert 'id="verification"' in page and "signing.pub" in page
