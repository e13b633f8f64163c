"""The local store stays intact: only manifests are tagged, signed, promoted or attached to; output paths
are checked before anything is written; corrupt blobs are named, replaced by a re-push, and found by fsck."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import Registry, Runner

from mloci.store import LayoutStore
from mloci.types import Reference, mediatype


def push(mloci: Runner, bundle: Path, *target: str) -> str:
    result = mloci("push", bundle, *target, "--json")
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["digest"])


def layers_of(home: Path, digest: str) -> list[dict[str, str]]:
    manifest = json.loads((home / "oci" / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())
    return [{"digest": manifest["config"]["digest"]}, *manifest["layers"]]


def weight_blob(home: Path, digest: str) -> Path:
    layer = next(entry for entry in layers_of(home, digest)[1:] if entry["digest"] and "onnx" in str(entry))
    return home / "oci" / "blobs" / "sha256" / layer["digest"].split(":")[1]


# -- item 3: output paths are checked first ---------------------------------------------------------


def test_an_unwritable_digest_file_fails_before_anything_is_pulled(
    mloci: Runner, bundle: Path, tmp_path: Path
) -> None:
    digest = push(mloci, bundle)
    out = tmp_path / "out"
    result = mloci(
        "pull", f"churn-model@{digest}", "-o", out, "--digest-file", tmp_path / "nonexistent" / "d.txt"
    )
    assert result.exit_code == 2, result.stderr
    assert "--digest-file" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert not out.exists()
    result = mloci("pull", f"churn-model@{digest}", "-o", out, "--digest-file", tmp_path)
    assert result.exit_code == 2 and "is a directory" in result.stderr
    assert not out.exists()


def test_the_digest_file_is_written_atomically(mloci: Runner, bundle: Path, tmp_path: Path) -> None:
    digest = push(mloci, bundle)
    target = tmp_path / "meta" / "digest.txt"
    target.parent.mkdir()
    target.write_text("old\n")
    result = mloci("pull", f"churn-model@{digest}", "-o", tmp_path / "out", "--digest-file", target)
    assert result.exit_code == 0, result.stderr
    assert target.read_text() == f"{digest}\n"
    assert [p.name for p in target.parent.iterdir()] == ["digest.txt"]
    assert target.stat().st_mode & 0o777 == 0o644


# -- item 4: nothing but a manifest is tagged, signed, promoted or attached to ---------------------


def test_tagging_a_blob_digest_is_refused_and_the_store_stays_intact(
    mloci: Runner, bundle: Path, mloci_home: Path
) -> None:
    digest = push(mloci, bundle)
    index = (mloci_home / "oci" / "index.json").read_bytes()
    for entry in layers_of(mloci_home, digest):
        result = mloci("tag", f"churn-model@{entry['digest']}", "oops")
        assert result.exit_code == 6, result.stderr
        assert "is not a manifest" in result.stderr and result.stderr.count("\n") == 1
    assert (mloci_home / "oci" / "index.json").read_bytes() == index
    assert mloci("ls", "churn-model").exit_code == 0
    assert mloci("gc", "churn-model", "--keep-last", "5").exit_code == 0


def test_sign_promote_attach_inspect_refuse_a_blob_digest(
    mloci: Runner, bundle: Path, mloci_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = push(mloci, bundle)
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "")
    key_result = mloci("keygen", "--output-key-prefix", tmp_path / "k", "--allow-unencrypted")
    assert key_result.exit_code == 0, key_result.stderr
    report = tmp_path / "report.json"
    report.write_text("{}")
    index = (mloci_home / "oci" / "index.json").read_bytes()
    for entry in layers_of(mloci_home, digest):
        blob = f"churn-model@{entry['digest']}"
        for args in (
            ("sign", blob, "--key", tmp_path / "k.key"),
            ("promote", blob, "--to", "prod"),
            ("attach", blob, report, "--artifact-type", "application/vnd.test+json"),
            ("inspect", blob),
        ):
            result = mloci(*args)
            assert result.exit_code == 6, (args, result.stderr)
            assert "is not a manifest" in result.stderr and "Traceback" not in result.stderr
    assert (mloci_home / "oci" / "index.json").read_bytes() == index


def test_a_registry_refuses_a_blob_digest_too(mloci: Runner, registry: Registry, bundle: Path) -> None:
    repo = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, repo)
    inspected = json.loads(mloci("inspect", f"{repo}@{digest}", "--json").stdout)
    layer = inspected["manifest"]["layers"][0]["digest"]
    result = mloci("tag", f"{repo}@{layer}", "oops")
    assert result.exit_code in (4, 6, 9), result.stderr  # distribution answers 500 to a blob as a manifest
    assert mloci("ls", repo, "--json").exit_code == 0
    assert "oops" not in mloci("ls", repo, "--json").stdout


def test_ls_and_gc_name_and_skip_a_broken_tag(mloci: Runner, bundle: Path, mloci_home: Path) -> None:
    """A store an older mloci corrupted: a tag naming a layer blob."""
    digest = push(mloci, bundle)
    layer = layers_of(mloci_home, digest)[1]["digest"]
    blob = (mloci_home / "oci" / "blobs" / "sha256" / layer.split(":")[1]).read_bytes()
    LayoutStore(mloci_home).push_manifest(
        Reference(None, "churn-model", "oops"), blob, mediatype.OCI_MANIFEST
    )
    result = mloci("ls", "churn-model", "--json")
    assert result.exit_code == 0, result.stderr
    assert "churn-model:oops" in result.stderr and "not a manifest" in result.stderr
    listed = json.loads(result.stdout)
    assert [v["digest"] for v in listed["versions"]] == [digest]
    assert listed["brokenTags"] and "churn-model:oops" in listed["brokenTags"][0]
    result = mloci("gc", "churn-model", "--keep-last", "0", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "churn-model:oops" in result.stderr
    assert mloci("tag", f"churn-model@{digest}", "oops").exit_code == 0  # the remedy: point it at a manifest
    assert "oops" in mloci("ls", "churn-model").stdout
