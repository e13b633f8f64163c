"""The catalog's pure parts: search parsing, charts, the digest cache, model names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloci.catalog import CatalogConfig, Query
from mloci.catalog.cache import ContentCache, is_immutable_tag
from mloci.catalog.models import ModelSummary, VersionSummary
from mloci.errors import UsageError
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.web.chart import HEIGHT, charts
from mloci.web.ui import _safe_url


def summary(name: str, **metrics: float) -> ModelSummary:
    latest = VersionSummary(digest="sha256:" + "0" * 64, version="1.0.0", metrics=metrics)
    return ModelSummary(
        name=name,
        repository=name,
        description="Churn classifier",
        features=["tenure_months"],
        owners=["ml-platform@example.com"],
        latest=latest,
        environments={"prod": "1.0.0"},
    )


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("churn", True),
        ("CHURN tenure", True),
        ("fraud", False),
        ("auc>0.9", True),
        ("auc>=0.95", True),
        ("auc>0.95", False),
        ("auc<1 loss<=0.2", False),  # no loss metric: a filter on it never matches
        ("env:prod", True),
        ("env:staging", False),
        ("ml-platform auc!=0.5", True),
    ],
)
def test_query_matches(text: str, matches: bool) -> None:
    assert Query.parse(text).matches(summary("churn-model", auc=0.95)) is matches


def test_query_parts() -> None:
    query = Query.parse("churn auc>0.9 env:prod", metric_filters=("f1<=0.5",), env="staging")
    assert query.words == ("churn",)
    assert [str(f) for f in query.metrics] == ["auc>0.9", "f1<=0.5"]
    assert query.environments == ("staging", "prod")
    with pytest.raises(UsageError):
        Query.parse("x" * 1001)
    with pytest.raises(UsageError):
        Query.parse(None, metric_filters=("auc>>0.9",))


def test_charts_oldest_first_and_scaled() -> None:
    versions = [
        VersionSummary(digest="sha256:" + "2" * 64, version="1.2.0", metrics={"auc": 0.9, "note": "x"}),
        VersionSummary(digest="sha256:" + "1" * 64, version="1.1.0", metrics={"auc": 0.8, "ok": True}),
        VersionSummary(digest="sha256:" + "0" * 64, version="1.0.0", metrics={"auc": 0.7}),
    ]
    (auc,) = charts(versions)
    assert auc.metric == "auc"
    assert [p.label for p in auc.points] == ["1.0.0", "1.1.0", "1.2.0"]
    assert (auc.low, auc.high) == (0.7, 0.9)
    assert auc.points[0].y > auc.points[-1].y  # higher values are drawn higher
    assert all(0 <= p.y <= HEIGHT for p in auc.points)
    assert len(auc.polyline.split()) == 3
    single = charts(versions[:1])[0]
    assert len(single.points) == 1


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://github.com/mloci/mloci", True),
        ("http://ci.example/run/1", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("//evil.example", False),
        ("https://", False),
    ],
)
def test_only_http_urls_become_links(url: str, safe: bool) -> None:
    assert (_safe_url(url) is not None) is safe


@pytest.mark.parametrize("persistent", [True, False])
def test_content_cache(tmp_path: Path, persistent: bool) -> None:
    cache = ContentCache(tmp_path / "cache.sqlite" if persistent else None)
    data = b'{"schemaVersion":2}'
    digest = Digest.of(data)
    assert cache.get(digest) is None
    cache.put(digest, "application/vnd.oci.image.manifest.v1+json", data)
    assert cache.get(digest) == ("application/vnd.oci.image.manifest.v1+json", data)
    descriptor = Descriptor(media_type="application/json", digest=digest, size=len(data))
    cache.set_tag("reg", "ml/m", "1.0.0", descriptor)
    assert cache.tag("reg", "ml/m", "1.0.0") == descriptor
    assert cache.tag("reg", "ml/m", "1.0.1") is None
    cache.close()
    if persistent:
        reopened = ContentCache(tmp_path / "cache.sqlite")
        assert reopened.get(digest) is not None
        reopened.close()


def test_unusable_cache_never_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = ContentCache(blocker / "cache.sqlite")  # its directory cannot be created
    digest = Digest.of(b"x")
    cache.put(digest, "t", b"x")
    assert cache.get(digest) == ("t", b"x")  # falls back to memory


def test_immutable_tags() -> None:
    assert is_immutable_tag("1.0.0") and is_immutable_tag("1.0.0-abc1234")
    assert is_immutable_tag("mloci-promotion-prod-20260101T000000000000Z-0a1b2c3d")
    assert not is_immutable_tag("prod") and not is_immutable_tag("latest")
    assert not is_immutable_tag("sha256-" + "0" * 64)


def test_model_names() -> None:
    config = CatalogConfig(registry="registry.example.com", namespace="ml")
    assert config.repository("team/churn").repository == "ml/team/churn"
    assert config.name_of("ml/team/churn") == "team/churn"
    for bad in ("Not..A..Name", "churn:1.0", "churn@sha256:" + "0" * 64, "../etc"):
        with pytest.raises(UsageError):
            config.repository(bad)
    assert CatalogConfig().repository("churn").registry is None


def test_an_environment_not_promoted_yet_does_not_match_its_filter() -> None:
    model = summary("churn-model").model_copy(update={"environments": {"dev": None, "prod": "1.0.0"}})
    assert Query.parse("env:prod").matches(model)
    assert not Query.parse("env:dev").matches(model)
    assert not Query.parse(None, env="dev").matches(model)


def test_configured_environments_resolve_policies_next_to_their_file(tmp_path: Path) -> None:
    from mloci.cli.serve import configured_environments

    project = tmp_path / "project"
    (project / "policies").mkdir(parents=True)
    (project / "policies" / "prod.yaml").write_text("{}\n")
    (project / "cli.yaml").write_text("{}\n")
    (project / "pyproject.toml").write_text(
        "[tool.mloci]\nenvironments = [\n"
        '  {name = "staging", repository = "r.example.com/ml/m", policy = "gone.yaml"},\n'
        '  {name = "prod", repository = "r.example.com/ml/m", alias = "live", policy = "policies/prod.yaml"},\n'
        "]\n"
    )
    given = {"staging": project / "cli.yaml"}  # --policy wins over the file's
    environments = configured_environments(project / "pyproject.toml", given)
    assert [(e.name, e.tag, e.policy) for e in environments] == [
        ("staging", "staging", str(project / "cli.yaml")),
        ("prod", "live", str(project / "policies" / "prod.yaml")),
    ]
    assert given["prod"] == project / "policies" / "prod.yaml"
    with pytest.raises(UsageError, match=r"gone\.yaml: no such file"):
        configured_environments(project / "pyproject.toml", {})
