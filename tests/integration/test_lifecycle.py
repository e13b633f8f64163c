"""Promotion by digest, audit trail, rollback, copy, listing, diff and retention against real registries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Registry, Runner, run_json

from mloci.ops.promote import promote
from mloci.types import Reference


def push(mloci: Runner, bundle: Path, repo: str, version: str | None = None, **metrics: float) -> str:
    if version or metrics:
        manifest = json.loads((bundle / "manifest.json").read_text())
        if version:
            manifest["version"] = version
        if metrics:
            (bundle / "metrics.json").write_text(
                json.dumps({**json.loads((bundle / "metrics.json").read_text()), **metrics})
            )
        (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = mloci("push", bundle, repo, "--json")
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["digest"])


@pytest.fixture
def second_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp("registry-2"))
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory, so no project configuration applies unless a test writes one."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_tag_is_a_byte_exact_retag_that_moves_no_blob(
    mloci: Runner, registry: Registry, bundle: Path, in_tmp: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, repo)
    uploads = registry.requests_matching(r'"(POST|PATCH|PUT) /v2/ml/churn/blobs/')
    result = run_json(mloci, "tag", f"{repo}:1.0.0", "latest", "candidate")
    assert result["digest"] == digest
    assert registry.requests_matching(r'"(POST|PATCH|PUT) /v2/ml/churn/blobs/') == uploads
    inspected = run_json(mloci, "inspect", f"{repo}:candidate")
    assert inspected["digest"] == digest
    refused = mloci("tag", f"{repo}:candidate", "1.0.0")
    assert refused.exit_code == 0  # same digest: fine
    other = push(mloci, bundle, repo, version="1.1.0")
    moved = mloci("tag", f"{repo}@{other}", "1.0.0")
    assert moved.exit_code == 7 and "immutable" in moved.stderr


def test_promote_history_and_rollback_within_a_repository(
    mloci: Runner, registry: Registry, bundle: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = f"{registry.host}/ml/churn"
    first = push(mloci, bundle, repo)
    second = push(mloci, bundle, repo, version="1.1.0")
    monkeypatch.setenv("MLOCI_ACTOR", "ci-bot")
    uploads = registry.requests_matching(r'"PATCH /v2/ml/churn/blobs/')

    one = run_json(mloci, "promote", f"{repo}:1.0.0", "--to", "prod", "--reason", "first release")
    assert one["digest"] == first and one["previous"] is None
    two = run_json(mloci, "promote", f"{repo}:1.1.0", "--to", "prod", "--reason", "better auc")
    assert two["previous"] == first and two["digest"] == second
    # Promotion retags: the model's blobs never move (records are tiny new blobs).
    assert registry.requests_matching(r'"PATCH /v2/ml/churn/blobs/') - uploads <= 4
    again = run_json(mloci, "promote", f"{repo}:1.1.0", "--to", "prod")
    assert again["unchanged"] is True

    hist = run_json(mloci, "history", repo, "--env", "prod")
    entries = hist["promotions"]
    assert isinstance(entries, list)
    assert [e["digest"] for e in entries] == [second, first]
    assert entries[0]["previous"] == first and entries[0]["actor"] == "ci-bot"
    assert entries[0]["reason"] == "better auc"

    back = run_json(mloci, "rollback", repo, "--env", "prod")
    assert back["digest"] == first and back["previous"] == second
    assert run_json(mloci, "inspect", f"{repo}:prod")["digest"] == first
    after = run_json(mloci, "history", repo, "--env", "prod")["promotions"]
    assert isinstance(after, list)
    assert after[0]["rollbackOf"] == second and after[0]["digest"] == first

    text = mloci("history", repo, "--env", "prod")
    assert "ci-bot" in text.stdout and text.stdout.count("\n") == 3


def test_promote_errors(mloci: Runner, registry: Registry, bundle: Path, in_tmp: Path) -> None:
    repo = f"{registry.host}/ml/churn"
    push(mloci, bundle, repo)
    missing = mloci("promote", f"{repo}:9.9.9", "--to", "prod")
    assert missing.exit_code == 4 and "nothing to promote" in missing.stderr
    version_alias = mloci("promote", f"{repo}:1.0.0", "--to", "2.0.0")
    assert version_alias.exit_code == 2
    (in_tmp / "mloci.toml").write_text(f'[[environments]]\nname = "dev"\nrepository = "{repo}"\n')
    unknown = mloci("promote", f"{repo}:1.0.0", "--to", "prod")
    assert unknown.exit_code == 2 and "unknown environment" in unknown.stderr and "dev" in unknown.stderr
    nothing = mloci("rollback", repo, "--env", "dev")
    assert nothing.exit_code == 4


def test_promotion_across_registries_copies_by_digest(
    mloci: Runner, registry: Registry, second_registry: Registry, bundle: Path, in_tmp: Path
) -> None:
    dev = f"{registry.host}/ml-dev/churn"
    prod = f"{second_registry.host}/ml/churn"
    (in_tmp / "mloci.toml").write_text(
        f'[[environments]]\nname = "dev"\nrepository = "{dev}"\n\n'
        f'[[environments]]\nname = "prod"\nrepository = "{prod}"\n'
    )
    digest = push(mloci, bundle, dev)
    run_json(mloci, "promote", f"{dev}:1.0.0", "--to", "dev")
    result = run_json(mloci, "promote", f"{dev}@{digest}", "--to", "prod")
    assert result["copied"] is True and result["digest"] == digest
    assert result["reference"] == f"{prod}:prod@{digest}"
    # The copy went registry to registry: same digest, and the model pulls from prod.
    assert run_json(mloci, "inspect", f"{prod}:prod")["digest"] == digest
    hist = run_json(mloci, "history", "--env", "prod")["promotions"]
    assert isinstance(hist, list) and len(hist) == 1 and hist[0]["source"].startswith(dev)


def test_racing_promotions_never_lose_a_record(
    registry: Registry, bundle: Path, mloci: Runner, in_tmp: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    digests = [push(mloci, bundle, repo, version=f"1.{i}.0") for i in range(4)]
    errors: list[BaseException] = []

    def promote_one(digest: str) -> None:
        try:
            promote(Reference.parse(f"{repo}@{digest}"), "staging", reason="race")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=promote_one, args=(d,)) for d in digests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    hist = run_json(mloci, "history", repo, "--env", "staging")["promotions"]
    assert isinstance(hist, list)
    assert sorted(e["digest"] for e in hist) == sorted(digests)
    current = run_json(mloci, "inspect", f"{repo}:staging")["digest"]
    assert current in digests


def test_copy_registry_to_local_store_to_other_registry_keeps_digest_and_referrers(
    mloci: Runner, registry: Registry, second_registry: Registry, bundle: Path, in_tmp: Path
) -> None:
    source = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, source)
    run_json(mloci, "promote", f"{source}:1.0.0", "--to", "staging")  # attaches a promotion record

    to_local = run_json(mloci, "copy", f"{source}:1.0.0", "airgap/churn:1.0.0", "--with-referrers")
    assert to_local["digest"] == digest and len(to_local["referrers"]) == 1
    out = run_json(
        mloci, "copy", "airgap/churn:1.0.0", f"{second_registry.host}/ml/churn", "--with-referrers"
    )
    assert out["digest"] == digest and out["reference"] == f"{second_registry.host}/ml/churn:1.0.0@{digest}"
    assert len(out["referrers"]) == 1

    again = run_json(mloci, "copy", f"{source}:1.0.0", f"{second_registry.host}/ml/churn")
    assert again["blobsCopied"] == 0 and again["blobsPresent"] >= 5
    mounted = run_json(mloci, "copy", f"{source}:1.0.0", f"{registry.host}/team-b/churn")
    assert mounted["blobsMounted"] >= 5 and mounted["blobsCopied"] == 0


def test_ls_shows_versions_metrics_and_aliases(
    mloci: Runner, registry: Registry, bundle: Path, in_tmp: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    first = push(mloci, bundle, repo)
    second = push(mloci, bundle, repo, version="1.1.0", auc=0.9)
    run_json(mloci, "promote", f"{repo}@{first}", "--to", "prod")
    listing = run_json(mloci, "ls", repo)["versions"]
    assert isinstance(listing, list)
    assert [v["version"] for v in listing] == ["1.1.0", "1.0.0"]
    assert listing[0]["digest"] == second and listing[0]["metrics"]["auc"] == 0.9
    assert listing[1]["aliases"] == ["prod"]
    assert all(not t.startswith(("sha256-", "mloci-")) for v in listing for t in v["tags"] + v["aliases"])


def test_diff_reports_metrics_dependencies_and_files(
    mloci: Runner, registry: Registry, bundle: Path, in_tmp: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    push(mloci, bundle, repo)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["version"] = "1.1.0"
    manifest["dependencies"]["requirements"] = ["numpy==2.5.0", "onnx==1.23.2", "scikit-learn==1.9.1"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (bundle / "metrics.json").write_text(json.dumps({"auc": 0.9, "accuracy": 0.857}))
    (bundle / "model.onnx").write_bytes(b"retrained")
    push(mloci, bundle, repo)
    result = run_json(mloci, "diff", f"{repo}:1.0.0", f"{repo}:1.1.0")
    assert result["identical"] is False
    assert result["metadata"]["version"] == {"left": "1.0.0", "right": "1.1.0"}
    assert result["metrics"]["auc"]["delta"] == pytest.approx(0.9 - 0.8683)
    assert "f1" in result["metrics"]  # removed metric
    assert result["dependencies"]["numpy"]["right"] == "numpy==2.5.0"
    assert result["dependencies"]["skl2onnx"]["right"] is None
    assert set(result["files"]) == {"model.onnx", "manifest.json", "metrics.json"}
    same = run_json(mloci, "diff", f"{repo}:1.0.0", f"{repo}:1.0.0")
    assert same["identical"] is True


def test_gc_plan_and_result_never_touch_aliased_versions(
    mloci: Runner, registry: Registry, bundle: Path, in_tmp: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    digests = [push(mloci, bundle, repo, version=f"1.{i}.0") for i in range(4)]
    run_json(mloci, "promote", f"{repo}@{digests[0]}", "--to", "prod")  # oldest, but held by prod
    plan = run_json(mloci, "gc", repo, "--keep-last", "1", "--dry-run")
    assert [v["version"] for v in plan["delete"]] == ["1.2.0", "1.1.0"]
    assert {v["version"] for v in plan["keep"]} == {"1.3.0", "1.0.0"}
    assert len(run_json(mloci, "ls", repo)["versions"]) == 4  # dry run deleted nothing

    done = run_json(mloci, "gc", repo, "--keep-last", "1")
    assert done["dryRun"] is False
    left = run_json(mloci, "ls", repo)["versions"]
    assert isinstance(left, list) and {v["version"] for v in left} == {"1.3.0", "1.0.0"}
    assert mloci("inspect", f"{repo}@{digests[1]}").exit_code == 4
    assert run_json(mloci, "history", repo, "--env", "prod")["promotions"]  # prod's record stays


def test_gc_in_the_local_store_reclaims_blobs(
    mloci: Runner, bundle: Path, mloci_home: Path, in_tmp: Path
) -> None:
    push(mloci, bundle, "churn")
    (bundle / "model.onnx").write_bytes(b"new weights")
    push(mloci, bundle, "churn", version="1.1.0")
    blobs = mloci_home / "oci" / "blobs" / "sha256"
    before = len(list(blobs.iterdir()))
    young = run_json(mloci, "gc", "churn", "--keep-last", "1", "--dry-run")
    assert [v["version"] for v in young["delete"]] == ["1.0.0"]
    result = run_json(mloci, "gc", "churn", "--keep-last", "1", "--grace-seconds", "0")
    assert [v["version"] for v in result["delete"]] == ["1.0.0"]
    assert result["blobsRemoved"] >= 2 and len(list(blobs.iterdir())) == before - int(result["blobsRemoved"])
    assert run_json(mloci, "pull", "churn:1.1.0", "-o", in_tmp / "m")["digest"]


def test_gc_on_a_registry_without_deletes_fails_cleanly(
    mloci: Runner, tmp_path_factory: pytest.TempPathFactory, bundle: Path, in_tmp: Path
) -> None:
    reg = Registry(tmp_path_factory.mktemp("nodelete"))
    reg.config.write_text(
        reg.config.read_text().replace("delete:\n    enabled: true", "delete:\n    enabled: false")
    )
    reg.start()
    try:
        repo = f"{reg.host}/ml/churn"
        push(mloci, bundle, repo)
        push(mloci, bundle, repo, version="1.1.0")
        result = mloci("gc", repo, "--keep-last", "1")
        assert result.exit_code == 10 and "does not allow deletes" in result.stderr
        assert len(run_json(mloci, "ls", repo)["versions"]) == 2
    finally:
        reg.stop()
