"""push → registry/local store → pull by digest, through the real CLI and a real registry."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import Registry, Runner

from mloci.store import RegistryStore
from mloci.types import Descriptor, Manifest, Reference, mediatype
from mloci.types.blob import Blob


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def push_json(mloci: Runner, *args: object) -> dict[str, object]:
    result = mloci("push", *args, "--json")
    assert result.exit_code == 0, result.stderr
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def test_push_pull_round_trip_by_digest(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    pushed = push_json(mloci, bundle, repo)
    digest = pushed["digest"]
    assert pushed["reference"] == f"{repo}:1.0.0@{digest}"
    assert pushed["tags"] == ["1.0.0"]

    out = tmp_path / "model"
    pulled = mloci("pull", f"{repo}@{digest}", "-o", out, "--json")
    assert pulled.exit_code == 0, pulled.stderr
    assert json.loads(pulled.stdout)["digest"] == digest
    for name in ("model.onnx", "metrics.json", "train.py"):
        assert sha256(out / name) == sha256(bundle / name)
    assert json.loads((out / ".mloci" / "pull.json").read_text())["digest"] == digest
    # The pulled bundle is itself a valid bundle that packs to the same digest.
    assert mloci("validate", out).exit_code == 0
    assert push_json(mloci, out, repo)["digest"] == digest


def test_repull_of_the_same_digest_is_a_no_op(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push_json(mloci, bundle, repo)["digest"]
    out = tmp_path / "model"
    assert mloci("pull", f"{repo}@{digest}", "-o", out).exit_code == 0
    before = registry.requests_matching(r'"GET /v2/ml/churn-model/blobs/')
    again = mloci("pull", f"{repo}@{digest}", "-o", out, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["unchanged"] is True
    assert registry.requests_matching(r'"GET /v2/ml/churn-model/blobs/') == before


def test_pull_into_an_existing_empty_directory_like_an_emptydir_mount(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push_json(mloci, bundle, repo)["digest"]
    mount = tmp_path / "models"
    mount.mkdir()
    assert mloci("pull", f"{repo}@{digest}", "-o", mount).exit_code == 0
    assert (mount / "model.onnx").is_file()
    assert [p.name for p in mount.iterdir() if p.name.startswith(".mloci-staging")] == []


def test_pull_refuses_a_foreign_non_empty_directory(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push_json(mloci, bundle, repo)["digest"]
    out = tmp_path / "busy"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    refused = mloci("pull", f"{repo}@{digest}", "-o", out)
    assert refused.exit_code == 7 and "not empty" in refused.stderr
    assert [p.name for p in out.iterdir()] == ["precious.txt"]
    assert mloci("pull", f"{repo}@{digest}", "-o", out, "--force").exit_code == 0
    assert (out / "precious.txt").read_text() == "keep me"  # --force never deletes unrelated entries
    assert (out / "model.onnx").is_file()


def test_repush_is_a_no_op_and_other_content_under_a_version_is_refused(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    first = push_json(mloci, bundle, repo)
    uploads = registry.requests_matching(r'"PUT /v2/ml/churn-model/blobs/uploads')
    again = push_json(mloci, bundle, repo)
    assert again["unchanged"] is True and again["digest"] == first["digest"]
    assert registry.requests_matching(r'"PUT /v2/ml/churn-model/blobs/uploads') == uploads

    (bundle / "model.onnx").write_bytes(b"retrained weights")
    refused = mloci("push", bundle, repo)
    assert refused.exit_code == 7
    assert "immutable" in refused.stderr and "--force" in refused.stderr
    forced = push_json(mloci, bundle, repo, "--force")
    assert forced["digest"] != first["digest"]


def test_unchanged_blobs_are_not_uploaded_again(mloci: Runner, registry: Registry, bundle: Path) -> None:
    repo = f"{registry.host}/ml/churn-model"
    push_json(mloci, bundle, repo)
    manifest_path = bundle / "manifest.json"
    manifest_path.write_text(manifest_path.read_text().replace('"1.0.0"', '"1.0.1"'))
    second = push_json(mloci, bundle, repo)
    # Only the changed manifest.json, its normalized metadata layer and the config are new.
    assert second["blobsUploaded"] == 3
    assert second["blobsSkipped"] == 6  # model, metrics, requirements, train.py, golden inputs/outputs


def test_short_names_use_mloci_registry(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_REGISTRY", f"{registry.host}/team")
    pushed = push_json(mloci, bundle)
    assert str(pushed["reference"]).startswith(f"{registry.host}/team/churn-model:1.0.0@")
    out = tmp_path / "m"
    assert mloci("pull", f"churn-model@{pushed['digest']}", "-o", out).exit_code == 0
    assert (out / "model.onnx").exists()


def test_local_store_is_the_default(mloci: Runner, bundle: Path, tmp_path: Path, mloci_home: Path) -> None:
    pushed = push_json(mloci, bundle)
    assert str(pushed["reference"]).startswith("churn-model:1.0.0@sha256:")
    assert (mloci_home / "oci" / "oci-layout").is_file()
    out = tmp_path / "m"
    assert mloci("pull", f"churn-model@{pushed['digest']}", "-o", out).exit_code == 0
    assert sha256(out / "model.onnx") == sha256(bundle / "model.onnx")


def test_filter_pulls_a_subset(mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push_json(mloci, bundle, repo)["digest"]
    weights = tmp_path / "weights"
    assert mloci("pull", f"{repo}@{digest}", "-o", weights, "--filter", "weight").exit_code == 0
    assert sorted(p.name for p in weights.iterdir()) == [".mloci", "model.onnx"]
    docs = tmp_path / "docs"
    assert mloci("pull", f"{repo}@{digest}", "-o", docs, "--filter", "*.json").exit_code == 0
    assert sorted(p.name for p in docs.iterdir()) == [".mloci", "manifest.json", "metrics.json", "tests"]
    none = mloci("pull", f"{repo}@{digest}", "-o", tmp_path / "none", "--filter", "*.xyz")
    assert none.exit_code == 2 and not (tmp_path / "none").exists()


def test_inspect_shows_metadata_without_downloading_weights(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    pushed = push_json(mloci, bundle, repo)
    weights_digest = "sha256:" + sha256(bundle / "model.onnx")
    result = mloci("inspect", f"{repo}:1.0.0", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["digest"] == pushed["digest"]
    assert info["reference"] == f"{repo}:1.0.0@{pushed['digest']}"
    assert info["manifest"]["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert info["metrics"]["auc"] == 0.8683
    assert info["bundle"]["intended_use"].startswith("Rank active customers")
    assert {f["path"] for f in info["files"]} >= {"model.onnx", "manifest.json"}
    assert registry.requests_matching(rf'"GET /v2/ml/churn-model/blobs/{weights_digest}') == 0
    text = mloci("inspect", f"{repo}:1.0.0")
    assert "auc: 0.8683" in text.stdout and "model.onnx" in text.stdout


def test_corrupted_blob_in_registry_storage_fails_the_pull_and_leaves_nothing(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push_json(mloci, bundle, repo)["digest"]
    data = registry.blob_data_path("sha256:" + sha256(bundle / "model.onnx"))
    corrupted = bytearray(data.read_bytes())
    corrupted[100] ^= 0xFF
    data.write_bytes(bytes(corrupted))
    parent = tmp_path / "pulls"
    parent.mkdir()
    result = mloci("pull", f"{repo}@{digest}", "-o", parent / "model")
    assert result.exit_code == 6, result.stderr
    assert "does not match digest" in result.stderr and "Traceback" not in result.stderr
    assert list(parent.iterdir()) == []  # neither the target nor a staging directory


def test_truncated_blob_fails_the_pull(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push_json(mloci, bundle, repo)["digest"]
    data = registry.blob_data_path("sha256:" + sha256(bundle / "train.py"))
    data.write_bytes(data.read_bytes()[:-10])
    mount = tmp_path / "mount"
    mount.mkdir()
    result = mloci("pull", f"{repo}@{digest}", "-o", mount)
    assert result.exit_code == 6
    assert list(mount.iterdir()) == []


def craft(registry: Registry, paths: list[str], tag: str) -> str:
    """Push a hand-made artifact whose layers claim the given file paths."""
    store = RegistryStore(registry.host)
    repo = Reference(registry.host, "evil/model")
    config = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    store.push_blob(repo.repository, config)
    layers = []
    for index, path in enumerate(paths):
        blob = Blob.of_bytes(mediatype.model_layer("weight"), f"payload {index}".encode())
        store.push_blob(repo.repository, blob)
        layers.append(blob.descriptor.model_copy(update={"annotations": {"org.cncf.model.filepath": path}}))
    manifest = Manifest(artifact_type=mediatype.MODEL_ARTIFACT, config=config.descriptor, layers=layers)
    descriptor: Descriptor = store.push_manifest(
        repo.with_tag(tag), manifest.to_json(), mediatype.OCI_MANIFEST
    )
    store.close()
    return f"{repo.name}@{descriptor.digest}"


@pytest.mark.parametrize(
    "paths",
    [
        ["../escape.txt"],
        ["/etc/evil"],
        ["ok/../../up"],
        ["a", "a/b"],
        ["dup", "dup"],
        [".mloci/pull.json"],
        ["a\\b"],
    ],
)
def test_unsafe_paths_in_a_manifest_are_refused(
    mloci: Runner, registry: Registry, tmp_path: Path, paths: list[str]
) -> None:
    ref = craft(registry, paths, "evil")
    out = tmp_path / "target" / "model"
    result = mloci("pull", ref, "-o", out)
    assert result.exit_code == 6, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "target").exists() or list((tmp_path / "target").iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_errors_are_one_line_with_distinct_exit_codes(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    missing = mloci("pull", f"{repo}:9.9.9", "-o", tmp_path / "x")
    assert missing.exit_code == 4 and missing.stderr.count("\n") == 1

    bad_ref = mloci("pull", "Not A Ref", "-o", tmp_path / "x")
    assert bad_ref.exit_code == 2 and "invalid" in bad_ref.stderr

    registry.stop()
    down = mloci("push", bundle, repo)
    assert down.exit_code == 8 and "connection refused" in down.stderr
    assert down.stderr.count("\n") == 1 and "Traceback" not in down.stderr

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "manifest.json").write_text("{}")
    invalid = mloci("push", broken, repo)
    assert invalid.exit_code == 3 and "invalid bundle" in invalid.stderr


def test_pushing_to_another_repository_mounts_known_blobs(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    first = push_json(mloci, bundle, f"{registry.host}/team-a/churn")
    patches = registry.requests_matching(r'"PATCH /v2/')
    second = push_json(mloci, bundle, f"{registry.host}/team-b/churn")
    assert second["digest"] == first["digest"]
    assert (
        registry.requests_matching(
            r'"POST /v2/team-b/churn/blobs/uploads/\?mount=sha256%3A[0-9a-f]+&from=team-a'
        )
        >= 1
    )
    assert registry.requests_matching(r'"PATCH /v2/') == patches  # no byte was uploaded again


def test_pull_never_overwrites_a_file_the_previous_pull_did_not_write(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    first = push_json(mloci, bundle, repo)["digest"]
    out = tmp_path / "model"
    assert mloci("pull", f"{repo}@{first}", "-o", out).exit_code == 0
    (bundle / "NOTES.md").write_text("new in 1.1.0")
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.1.0"'))
    second = push_json(mloci, bundle, repo)["digest"]
    (out / "NOTES.md").write_text("my own notes")  # the user's file, with the same name
    refused = mloci("pull", f"{repo}@{second}", "-o", out)
    assert refused.exit_code == 7 and "NOTES.md" in refused.stderr
    assert (out / "NOTES.md").read_text() == "my own notes"
    assert json.loads((out / ".mloci" / "pull.json").read_text())["digest"] == first
    (out / "NOTES.md").unlink()
    upgraded = mloci("pull", f"{repo}@{second}", "-o", out)
    assert upgraded.exit_code == 0, upgraded.stderr
    assert (out / "NOTES.md").read_text() == "new in 1.1.0"
