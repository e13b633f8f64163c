"""The catalog REST API (/api/v1) over a real registry and over the local store, with httpx."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from catalog_helpers import CHURN_AUC, SLOW, model_version, populate, running_catalog
from helpers import Registry, Runner
from pydists import IndexServer, write_wheel

from mloci.catalog import CatalogConfig


@pytest.fixture
def served(registry: Registry, mloci: Runner, tmp_path: Path) -> Iterator[tuple[IndexServer, dict[str, str]]]:
    digests = populate(mloci, tmp_path, f"{registry.host}/ml/")
    config = CatalogConfig(registry=registry.host, namespace="ml", refresh=0)
    with running_catalog(config) as server:
        yield server, digests


def test_models_list_filters_and_pages(served: tuple[IndexServer, dict[str, str]]) -> None:
    server, digests = served
    with httpx.Client(base_url=server.url, timeout=SLOW) as http:
        everything = http.get("/api/v1/models").json()
        assert [m["name"] for m in everything["models"]] == ["churn-model", "team/fraud-detector"]
        churn = everything["models"][0]
        assert churn["latest"]["version"] == "1.2.0"
        assert churn["latest"]["digest"] == digests["1.2.0"]
        assert churn["latest"]["metrics"]["auc"] == CHURN_AUC["1.2.0"]
        assert churn["environments"] == {"prod": "1.1.0", "staging": "1.2.0"}
        assert churn["lastPromotion"]["environment"] == "staging"
        assert churn["versions"] == 3

        def names(**params: str) -> list[str]:
            response = http.get("/api/v1/models", params=params)
            assert response.status_code == 200, response.text
            return [m["name"] for m in response.json()["models"]]

        assert names(q="fraud") == ["team/fraud-detector"]
        assert names(q="tenure_months") == ["churn-model", "team/fraud-detector"]  # a feature of both
        assert names(q="auc>0.9") == ["churn-model"]
        assert names(metric="auc<=0.7") == ["team/fraud-detector"]
        assert names(q="env:prod") == ["churn-model"]
        assert names(q="churn auc>0.95") == []

        first = http.get("/api/v1/models", params={"limit": 1})
        assert [m["name"] for m in first.json()["models"]] == ["churn-model"]
        assert first.json()["total"] == 2
        assert 'rel="next"' in first.headers["link"]
        following = first.headers["link"].split(";")[0].strip("<>")
        second = http.get(following)
        assert [m["name"] for m in second.json()["models"]] == ["team/fraud-detector"]
        assert 'rel="prev"' in second.headers["link"] and 'rel="next"' not in second.headers["link"]

        bad = http.get("/api/v1/models", params={"limit": "many"})
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["code"] == "BAD_REQUEST"


def test_etags_and_immutable_manifests(served: tuple[IndexServer, dict[str, str]]) -> None:
    server, digests = served
    with httpx.Client(base_url=server.url, timeout=SLOW) as http:
        listing = http.get("/api/v1/models")
        etag = listing.headers["etag"]
        assert listing.headers["cache-control"] == "no-cache"
        again = http.get("/api/v1/models", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""

        digest = digests["1.1.0"]
        raw = http.get(f"/api/v1/models/churn-model/manifests/{digest}")
        assert raw.status_code == 200
        assert "immutable" in raw.headers["cache-control"]
        assert raw.headers["etag"] == f'"{digest}"'
        assert "sha256:" + hashlib.sha256(raw.content).hexdigest() == digest
        cached = http.get(
            f"/api/v1/models/churn-model/manifests/{digest}", headers={"If-None-Match": f'"{digest}"'}
        )
        assert cached.status_code == 304


def test_model_version_history_and_diff(served: tuple[IndexServer, dict[str, str]]) -> None:
    server, digests = served
    with httpx.Client(base_url=server.url, timeout=SLOW) as http:
        model = http.get("/api/v1/models/churn-model").json()
        assert [v["version"] for v in model["versions"]] == ["1.2.0", "1.1.0", "1.0.0"]
        assert model["card"]["intendedUse"].startswith("Rank active customers")
        assert [h["version"] for h in model["history"]] == ["1.2.0", "1.1.0", "1.0.0"]

        nested = http.get("/api/v1/models/team/fraud-detector")
        assert nested.status_code == 200 and nested.json()["model"]["name"] == "team/fraud-detector"

        by_tag = http.get("/api/v1/models/churn-model/versions/1.1.0").json()
        by_digest = http.get(f"/api/v1/models/churn-model/versions/{digests['1.1.0']}").json()
        assert by_tag == by_digest
        assert by_tag["summary"]["aliases"] == ["prod"]
        assert by_tag["pull"] == f"mloci pull {by_tag['repository']}@{digests['1.1.0']}"
        assert {f["path"] for f in by_tag["files"]} >= {"model.onnx", "manifest.json"}
        assert ".mloci-manifest.json" not in {f["path"] for f in by_tag["files"]}  # metadata, not a file
        kinds = [r["kind"] for r in by_tag["referrers"]]
        assert kinds == ["promotion record"]

        prod = http.get("/api/v1/models/churn-model/history", params={"environment": "prod"}).json()[
            "history"
        ]
        assert [(h["previousVersion"], h["version"], h["reason"]) for h in prod] == [
            ("1.0.0", "1.1.0", "better auc"),
            (None, "1.0.0", "first release"),
        ]

        diff = http.get(
            "/api/v1/diff", params={"a": "churn-model:1.0.0", "b": f"churn-model@{digests['1.2.0']}"}
        )
        assert diff.status_code == 200
        delta = diff.json()["metrics"]["auc"]
        assert (delta["left"], delta["right"]) == (0.81, 0.93)
        assert delta["delta"] == pytest.approx(0.12)
        assert "model.onnx" in diff.json()["files"]

        for path, code in (
            ("/api/v1/models/nothing-here", "NOT_FOUND"),
            ("/api/v1/models/churn-model/versions/9.9.9", "NOT_FOUND"),
            ("/api/v1/diff?a=churn-model", "BAD_REQUEST"),
            ("/api/v1/models/Not..A..Name", "BAD_REQUEST"),
        ):
            response = http.get(path)
            assert response.json()["errors"][0]["code"] == code, (path, response.text)
            assert set(response.json()["errors"][0]) == {"code", "message", "detail"}


def test_openapi_document(served: tuple[IndexServer, dict[str, str]]) -> None:
    server, _ = served
    document = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=SLOW).json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/models/{name}/versions/{ref}" in document["paths"]
    assert "ModelSummary" in document["components"]["schemas"]
    assert "post" in document["paths"]["/api/v1/models/{name}/promote"]
    page = httpx.get(f"{server.url}/api/v1/", timeout=SLOW)
    assert page.status_code == 200 and "GET /api/v1/models/{name}/versions/{ref}" in page.text


def test_packages_and_the_simple_index(
    served: tuple[IndexServer, dict[str, str]], registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    server, _ = served
    wheel = write_wheel(tmp_path / "dist")
    assert mloci("wheel", "push", wheel, f"{registry.host}/ml").exit_code == 0
    simple = httpx.get(
        f"{server.url}/simple/featurekit/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=SLOW,
    )
    assert simple.status_code == 200
    assert [f["filename"] for f in simple.json()["files"]] == [wheel.name]
    packages = httpx.get(f"{server.url}/api/v1/packages", timeout=SLOW).json()["packages"]
    assert [(p["name"], p["releases"][0]["version"]) for p in packages] == [("featurekit", "0.1.3")]
    assert packages[0]["releases"][0]["files"][0]["filename"] == wheel.name
    models = httpx.get(f"{server.url}/api/v1/models", timeout=SLOW).json()["models"]
    assert "featurekit" not in [m["name"] for m in models]


def test_local_store(mloci: Runner, tmp_path: Path) -> None:
    populate(mloci, tmp_path, "")
    with (
        running_catalog(CatalogConfig(refresh=0)) as server,
        httpx.Client(base_url=server.url, timeout=SLOW) as http,
    ):
        models = http.get("/api/v1/models").json()["models"]
        assert [m["name"] for m in models] == ["churn-model", "team/fraud-detector"]
        assert models[0]["environments"] == {"prod": "1.1.0", "staging": "1.2.0"}
        assert http.get("/api/v1/models", params={"q": "auc>0.9"}).json()["total"] == 1
        assert http.get("/api/v1/models/churn-model/versions/1.0.0").status_code == 200
        assert http.get("/simple/").status_code == 404  # no registry, no package index


def test_new_versions_show_up_after_a_background_refresh(
    registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    config = CatalogConfig(registry=registry.host, namespace="ml", refresh=0.5)
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        assert http.get("/api/v1/models/churn-model").json()["model"]["latest"]["version"] == "1.2.0"
        (tmp_path / "next").mkdir()
        bundle = model_version(tmp_path / "next", "1.3.0", {"auc": 0.95})
        assert mloci("push", bundle, f"{registry.host}/ml/churn-model", "-q").exit_code == 0
        deadline = time.monotonic() + 30
        while http.get("/api/v1/models/churn-model").json()["model"]["latest"]["version"] != "1.3.0":
            assert time.monotonic() < deadline, "the new version never showed up"
            time.sleep(0.2)
        assert http.get("/api/v1/models", params={"q": "auc>0.94"}).json()["total"] == 1


def test_version_files_are_listed_as_inspect_lists_them(
    registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    bundle = model_version(tmp_path, "2.0.0", {"auc": 0.9})
    (bundle / "tokenizer").mkdir()
    for i in range(120):  # enough small files for a tar layer (docs/format.md)
        (bundle / "tokenizer" / f"piece-{i:03}.txt").write_text(f"token {i}\n")
    assert mloci("push", bundle, f"{registry.host}/ml/churn-model", "-q").exit_code == 0
    inspected = mloci("inspect", f"{registry.host}/ml/churn-model:2.0.0", "--json")
    expected = {f["path"] for f in json.loads(inspected.stdout)["files"]}
    config = CatalogConfig(registry=registry.host, namespace="ml", refresh=0)
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        files = http.get("/api/v1/models/churn-model/versions/2.0.0").json()["files"]
        page = http.get("/models/churn-model/versions/2.0.0").text
    paths = {f["path"] for f in files}
    assert paths == expected
    assert "tokenizer/piece-007.txt" in paths and ".mloci-files.json" not in paths
    assert next(f for f in files if f["path"] == "tokenizer/piece-007.txt")["layer"].startswith("sha256:")
    assert "tokenizer/piece-007.txt" in page
