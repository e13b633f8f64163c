"""The local store stays intact: only manifests are tagged, signed, promoted or attached to; output paths
are checked before anything is written; corrupt blobs are named, replaced by a re-push, and found by fsck."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    assert "digest file" in result.stderr and "does not exist" in result.stderr
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
    found = mloci("fsck", "--json")
    assert found.exit_code == 6 and "churn-model:oops" in json.loads(found.stdout)["brokenTags"][0]
    assert mloci("tag", f"churn-model@{digest}", "oops").exit_code == 0  # the remedy: point it at a manifest
    assert "oops" in mloci("ls", "churn-model").stdout
    assert mloci("fsck").exit_code == 0


# -- item 6: damaged blobs are named, replaced by a re-push, found and repaired by fsck ------------


def damage(blob: Path) -> None:
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))


def test_pull_names_the_damaged_blob_file_and_the_remedy(
    mloci: Runner, bundle: Path, mloci_home: Path, tmp_path: Path
) -> None:
    digest = push(mloci, bundle)
    blob = weight_blob(mloci_home, digest)
    damage(blob)
    result = mloci("pull", f"churn-model@{digest}", "-o", tmp_path / "out")
    assert result.exit_code == 6, result.stderr
    assert str(blob) in result.stderr and "mloci fsck" in result.stderr and "push" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_re_push_replaces_a_damaged_blob(
    mloci: Runner, bundle: Path, mloci_home: Path, tmp_path: Path
) -> None:
    digest = push(mloci, bundle)
    blob = weight_blob(mloci_home, digest)
    damage(blob)
    result = mloci("push", bundle, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["unchanged"] is False
    assert json.loads(result.stdout)["blobsUploaded"] == 1
    assert mloci("pull", f"churn-model@{digest}", "-o", tmp_path / "out").exit_code == 0
    assert (tmp_path / "out" / "model.onnx").read_bytes() == (bundle / "model.onnx").read_bytes()
    again = mloci("push", bundle, "--json")
    assert json.loads(again.stdout)["unchanged"] is True


def test_a_re_push_replaces_a_damaged_manifest(mloci: Runner, bundle: Path, mloci_home: Path) -> None:
    digest = push(mloci, bundle)
    damage(mloci_home / "oci" / "blobs" / "sha256" / digest.split(":")[1])
    assert mloci("push", bundle).exit_code == 0
    assert mloci("fsck").exit_code == 0


def test_fsck_reports_damage_and_repairs_from_a_registry(
    mloci: Runner, registry: Registry, bundle: Path, mloci_home: Path
) -> None:
    digest = push(mloci, bundle)
    assert push(mloci, bundle, f"{registry.host}/mirror/churn-model") == digest
    clean = mloci("fsck", "--json")
    assert clean.exit_code == 0, clean.stderr
    report = json.loads(clean.stdout)
    assert report["intact"] is True and report["problems"] == [] and report["blobsChecked"] >= 4
    blob = weight_blob(mloci_home, digest)
    damage(blob)
    config = (
        mloci_home / "oci" / "blobs" / "sha256" / layers_of(mloci_home, digest)[0]["digest"].split(":")[1]
    )
    config.unlink()
    found = mloci("fsck", "--json")
    assert found.exit_code == 6
    problems = {p["kind"]: p for p in json.loads(found.stdout)["problems"]}
    assert problems["damaged"]["path"] == str(blob)
    assert "churn-model:1.0.0" in problems["damaged"]["usedBy"]
    assert problems["missing"]["path"] == str(config)
    text = mloci("fsck")
    assert text.exit_code == 6 and str(blob) in text.stdout and "--repair-from" in text.stderr
    wrong = mloci("fsck", "--repair-from", f"{registry.host}/elsewhere", "--json")
    assert wrong.exit_code == 6 and json.loads(wrong.stdout)["problems"][0]["repairError"]
    repaired = mloci("fsck", "--repair-from", f"{registry.host}/mirror", "--json")
    assert repaired.exit_code == 0, repaired.stderr
    assert json.loads(repaired.stdout)["repaired"] == 2
    assert mloci("fsck").exit_code == 0


def test_fsck_memory_stays_flat(tmp_path: Path, mloci_home: Path) -> None:
    """A 256 MiB blob is checked in a process whose peak RSS grows by far less than the blob."""
    big = tmp_path / "big"
    big.mkdir()
    (big / "manifest.json").write_text('{"name": "big", "version": "1.0.0"}')
    with (big / "model.bin").open("wb") as handle:
        handle.truncate(256 << 20)
    env = {**os.environ, "MLOCI_HOME": str(mloci_home)}
    subprocess.run(
        [sys.executable, "-m", "mloci", "push", str(big)], check=True, env=env, capture_output=True
    )
    code = (
        "import resource, sys\n"
        "from mloci.cli import main\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "code = main(['fsck'])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) < 32 << 10  # KiB: under 32 MiB for a 256 MiB blob
