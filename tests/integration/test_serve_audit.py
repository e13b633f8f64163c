"""What issue 12 asks of the catalog, checked against a real registry: caching headers on every API
route, pages of every list, lineage (datasets → model → parent, inference images), dependency changes
on the compare page, yanked packages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from catalog_helpers import SLOW, model_version, populate, running_catalog
from helpers import Registry, Runner
from pydists import IndexServer, write_wheel
from test_image import push_base

from mloci.catalog import CatalogConfig


@pytest.fixture
def served(registry: Registry, mloci: Runner, tmp_path: Path) -> Iterator[tuple[IndexServer, dict[str, str]]]:
    digests = populate(mloci, tmp_path, f"{registry.host}/ml/")
    config = CatalogConfig(registry=registry.host, namespace="ml", refresh=0)
    with running_catalog(config) as server:
        yield server, digests


def test_every_api_route_has_an_etag_and_cache_control(
    served: tuple[IndexServer, dict[str, str]], registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    server, digests = served
    assert mloci("wheel", "push", write_wheel(tmp_path / "dist"), f"{registry.host}/ml").exit_code == 0
    routes = [
        "/api/v1/",
        "/api/v1/openapi.json",
        "/api/v1/models?q=churn",
        "/api/v1/models/churn-model",
        "/api/v1/models/team/fraud-detector",
        "/api/v1/models/churn-model/versions/1.1.0",
        f"/api/v1/models/churn-model/versions/{digests['1.0.0']}",
        f"/api/v1/models/churn-model/manifests/{digests['1.0.0']}",
        "/api/v1/models/churn-model/history",
        "/api/v1/diff?a=churn-model:1.0.0&b=churn-model:1.2.0",
        "/api/v1/packages",
    ]
    with httpx.Client(base_url=server.url, timeout=SLOW) as http:
        for route in routes:
            first = http.get(route)
            assert first.status_code == 200, (route, first.text)
            assert first.headers.get("etag"), route
            assert first.headers.get("cache-control"), route
            again = http.get(route, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304, route
            assert again.headers["etag"] == first.headers["etag"]


def test_history_and_packages_come_in_pages(
    served: tuple[IndexServer, dict[str, str]], registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    server, _ = served
    for name in ("alpha", "beta", "gamma"):
        wheel = write_wheel(tmp_path / name, name=name)
        assert mloci("wheel", "push", wheel, f"{registry.host}/ml").exit_code == 0
    with httpx.Client(base_url=server.url, timeout=SLOW) as http:
        first = http.get("/api/v1/models/churn-model/history", params={"limit": 2})
        assert first.json()["total"] == 3 and len(first.json()["history"]) == 2
        following = first.headers["link"].split(";")[0].strip("<>")
        assert "limit=2" in following and "page=2" in following
        second = http.get(following).json()
        assert [h["version"] for h in second["history"]] == ["1.0.0"]
        everything = [h["record"] for h in first.json()["history"] + second["history"]]
        assert len(set(everything)) == 3

        packages = http.get("/api/v1/packages", params={"limit": 2, "page": 2})
        assert packages.json()["total"] == 3 and len(packages.json()["packages"]) == 1
        assert 'rel="prev"' in packages.headers["link"] and 'rel="next"' not in packages.headers["link"]
        bad = http.get("/api/v1/models/churn-model/history", params={"limit": 0})
        assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "BAD_REQUEST"


def test_lineage_from_datasets_to_parent_and_inference_images(
    registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    digests = populate(mloci, tmp_path, f"{registry.host}/ml/")
    dataset = "sha256:" + "d" * 64
    (tmp_path / "child").mkdir()
    child = model_version(
        tmp_path / "child",
        "2.0.0",
        {"auc": 0.94},
        lineage={
            "datasets": [
                {"uri": "s3://data/churn/2026-11", "digest": dataset, "name": "churn", "split": "train"}
            ],
            "parent_model": f"{registry.host}/ml/churn-model:1.2.0",
        },
        dependencies={"python": ">=3.12", "requirements": ["numpy==2.4.6", "onnxruntime==1.23.0"]},
    )
    pushed = mloci("push", child, f"{registry.host}/ml/churn-model", "--json", "-q")
    assert pushed.exit_code == 0, pushed.stderr
    digest = json.loads(pushed.stdout)["digest"]
    base = push_base(registry)
    built = mloci(
        "image", "build", f"{registry.host}/ml/churn-model:2.0.0", "--base", base, "--repo",
        f"{registry.host}/ml/churn-serve", "--json",
    )  # fmt: skip
    assert built.exit_code == 0, built.stderr
    image = json.loads(built.stdout)
    config = CatalogConfig(registry=registry.host, namespace="ml", refresh=0)
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        # The first request of a fresh server: the images are found all the same.
        detail = http.get("/api/v1/models/churn-model/versions/2.0.0").json()
        lineage = detail["lineage"]
        assert lineage["datasets"][0]["digest"] == dataset
        assert (lineage["parentName"], lineage["parentVersion"]) == ("churn-model", "1.2.0")
        [found] = lineage["images"]
        assert found["repository"] == f"{registry.host}/ml/churn-serve"
        assert found["digest"] == image["digest"] and found["tags"]
        page = http.get("/models/churn-model/versions/2.0.0").text
        assert "s3://data/churn/2026-11" in page and dataset[:19] in page
        assert 'href="/models/churn-model/versions/1.2.0"' in page  # the parent, a link
        assert f"{registry.host}/ml/churn-serve" in page and found["tags"][0] in page
        assert f"mloci pull {registry.host}/ml/churn-model@{digest}" in page
        names = [m["name"] for m in http.get("/api/v1/models").json()["models"]]
        assert "churn-serve" not in names  # an image, not a model

        diff = http.get("/api/v1/diff", params={"a": "churn-model:1.2.0", "b": "churn-model:2.0.0"}).json()
        changes = diff["dependencies"]
        assert changes["onnxruntime"] == {"left": None, "right": "onnxruntime==1.23.0", "delta": None}
        assert changes["onnx"]["right"] is None and changes["python"]["right"] == "python >=3.12"
        assert "numpy" not in changes
        pair = {"a": f"churn-model@{digests['1.2.0']}", "b": f"churn-model@{digest}"}
        compare = http.get("/compare", params=pair).text
        table = compare[compare.index('id="dependency-changes"') :]
        assert "<td>onnxruntime</td><td>added</td>" in table and "<td>onnx</td><td>removed</td>" in table


def test_packages_page_shows_releases_files_and_yanked_state(
    served: tuple[IndexServer, dict[str, str]], registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    server, _ = served
    for version in ("0.1.3", "0.2.0"):
        wheel = write_wheel(tmp_path / version, version=version)
        assert mloci("wheel", "push", wheel, f"{registry.host}/ml").exit_code == 0
    yanked = mloci("wheel", "yank", f"{registry.host}/ml/featurekit==0.1.3", "--reason", "<b>broken</b>")
    assert yanked.exit_code == 0, yanked.stderr
    page = httpx.get(f"{server.url}/packages/", timeout=SLOW)
    assert page.status_code == 200
    assert (
        "featurekit-0.2.0-py3-none-any.whl" in page.text and "featurekit-0.1.3-py3-none-any.whl" in page.text
    )
    assert "yanked: &lt;b&gt;broken&lt;/b&gt;" in page.text
    releases = httpx.get(f"{server.url}/api/v1/packages", timeout=SLOW).json()["packages"][0]["releases"]
    assert [(r["version"], r["yanked"]) for r in releases] == [("0.2.0", False), ("0.1.3", True)]
