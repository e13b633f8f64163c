"""A directory signed with the real ``model_signing`` (PyPI model-signing) before ``mloci push``
still verifies after ``mloci pull``: every file, manifest.json included, comes back byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import model_signing as openssf
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import Registry, Runner

from mloci.bundle.load import load_bundle
from mloci.bundle.pack import manifest_document
from mloci.store import RegistryStore
from mloci.types import Manifest, Reference
from mloci.types import annotations as ann

MODEL_SIGNING = shutil.which("model_signing") or str(Path(sys.executable).with_name("model_signing"))


@pytest.fixture(autouse=True)
def no_key_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "signer.key", tmp_path / "signer.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture
def model(bundle: Path) -> Path:
    """The example bundle (its manifest.json is hand-written, and metrics.json is merged on push)."""
    (bundle / "weights").mkdir()
    (bundle / "weights" / "shard-0.bin").write_bytes(b"\x00\x01" * 4096)
    return bundle


def model_signing(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MODEL_SIGNING, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != ".mloci"
    }


def push(mloci: Runner, path: Path, repo: str, *args: str) -> str:
    result = mloci("push", path, repo, *args, "--json")
    assert result.exit_code == 0, result.stderr
    digest = json.loads(result.stdout)["digest"]
    assert isinstance(digest, str)
    return digest


def test_a_directory_signed_with_model_signing_verifies_after_push_and_pull(
    mloci: Runner, registry: Registry, model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    made = model_signing("sign", "key", model, "--private_key", private, "--signature", model / "model.sig")
    assert made.returncode == 0, made.stdout + made.stderr
    signed = tree(model)
    assert "manifest.json" in signed and "model.sig" in signed

    repo = f"{registry.host}/ml/signed-model"
    digest = push(mloci, model, repo)
    out = tmp_path / "pulled"
    assert mloci("pull", f"{repo}@{digest}", "-o", out).exit_code == 0
    assert tree(out) == signed  # manifest.json and model.sig byte for byte, nothing added

    # model_signing's CLI: the documented command leaves out mloci's marker directory.
    theirs = model_signing(
        "verify", "key", out, "--public_key", public, "--signature", out / "model.sig",
        "--ignore-paths", out / ".mloci",
    )  # fmt: skip
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    # Its Python API, the same way.
    openssf.verifying.Config().use_elliptic_key_verifier(public_key=public).set_hashing_config(
        openssf.hashing.Config().set_ignored_paths(paths=[out / ".mloci", out / "model.sig"])
    ).verify(out, out / "model.sig")
    # mloci's own verification (it leaves out its marker itself).
    assert mloci("verify", out, "--model-signing", "--key", public).exit_code == 0

    # mloci's normalized metadata still travels: metrics.json merged, read without the weights.
    inspected = json.loads(mloci("inspect", f"{repo}@{digest}", "--json").stdout)
    assert inspected["bundle"]["metrics"]["auc"] == json.loads((model / "metrics.json").read_text())["auc"]
    assert ".mloci-manifest.json" not in {f["path"] for f in inspected["files"]}
    # …and the pulled directory packs to the same digest.
    assert push(mloci, out, repo) == digest
    # A tampered file is still caught after the round trip.
    (out / "weights" / "shard-0.bin").write_bytes(b"tampered")
    refused = model_signing(
        "verify", "key", out, "--public_key", public, "--signature", out / "model.sig",
        "--ignore-paths", out / ".mloci",
    )  # fmt: skip
    assert refused.returncode != 0
    assert mloci("verify", out, "--model-signing", "--key", public).exit_code == 6


@pytest.mark.parametrize("signer", ["model_signing", "mloci"])
def test_a_signature_that_ignores_the_marker_verifies_with_the_plain_command(
    mloci: Runner, registry: Registry, model: Path, keys: tuple[Path, Path], tmp_path: Path, signer: str
) -> None:
    private, public = keys
    if signer == "mloci":  # records .mloci as ignored by itself
        assert mloci("sign", model, "--model-signing", "--key", private).exit_code == 0
    else:
        made = model_signing(
            "sign", "key", model, "--private_key", private, "--signature", model / "model.sig",
            "--ignore-paths", model / ".mloci",
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
    repo = f"{registry.host}/ml/signed-model"
    digest = push(mloci, model, repo)
    out = tmp_path / "pulled"
    assert mloci("pull", f"{repo}@{digest}", "-o", out).exit_code == 0
    plain = model_signing("verify", "key", out, "--public_key", public, "--signature", out / "model.sig")
    assert plain.returncode == 0, plain.stdout + plain.stderr


def test_the_users_manifest_json_and_the_normalized_metadata_travel_in_their_own_layers(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/layout"
    digest = push(mloci, bundle, repo)
    _, data = RegistryStore(registry.host).fetch_manifest(Reference.parse(f"{repo}@{digest}"))
    layers = {d.annotation(ann.MODEL_FILEPATH): d for d in Manifest.from_json(data).layers}
    user = layers["manifest.json"]
    assert user.annotation(ann.ROLE) is None
    assert str(user.digest) == "sha256:" + hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    metadata = layers[".mloci-manifest.json"]
    assert metadata.annotation(ann.ROLE) == "bundle-manifest"
    assert metadata.media_type == "application/vnd.cncf.model.doc.v1.raw"

    # A pulled directory keeps the metadata beside its marker, out of the files.
    out = tmp_path / "pulled"
    assert mloci("pull", f"{repo}@{digest}", "-o", out).exit_code == 0
    assert not (out / ".mloci-manifest.json").exists()
    kept = json.loads((out / ".mloci" / "manifest.json").read_text())
    assert kept["metrics"] == json.loads((bundle / "metrics.json").read_text()) | kept["metrics"]
    # A repeated pull is a no-op only while that copy is there.
    again = mloci("pull", f"{repo}@{digest}", "-o", out, "--json")
    assert json.loads(again.stdout)["unchanged"] is True
    (out / ".mloci" / "manifest.json").unlink()
    restored = mloci("pull", f"{repo}@{digest}", "-o", out, "--json")
    assert json.loads(restored.stdout)["unchanged"] is False
    assert json.loads((out / ".mloci" / "manifest.json").read_text()) == kept


def test_a_bundle_whose_manifest_is_already_normalized_keeps_the_single_layer_and_its_digest(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    """The layout every earlier mloci wrote: what it pulled re-packs the same, and still reads."""
    (bundle / "manifest.json").write_bytes(manifest_document(load_bundle(bundle).manifest))
    repo = f"{registry.host}/ml/normalized"
    digest = push(mloci, bundle, repo)
    _, data = RegistryStore(registry.host).fetch_manifest(Reference.parse(f"{repo}@{digest}"))
    paths = [d.annotation(ann.MODEL_FILEPATH) for d in Manifest.from_json(data).layers]
    assert ".mloci-manifest.json" not in paths
    [layer] = [
        d for d in Manifest.from_json(data).layers if d.annotation(ann.MODEL_FILEPATH) == "manifest.json"
    ]
    assert layer.annotation(ann.ROLE) == "bundle-manifest"

    out = tmp_path / "pulled"
    assert mloci("pull", f"{repo}@{digest}", "-o", out).exit_code == 0
    assert not (out / ".mloci" / "manifest.json").exists()
    assert push(mloci, out, repo) == digest
    inspected = json.loads(mloci("inspect", f"{repo}@{digest}", "--json").stdout)
    assert inspected["bundle"]["name"] == "churn-model"


def test_what_push_filled_in_comes_back_with_the_pulled_directory(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    """git_sha/git_dirty detected from the work tree and --pack choices are only in the metadata
    layer, not in the user's manifest.json: pull keeps them, so the directory re-packs the same."""
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "model"]):
        subprocess.run(["git", *args], cwd=bundle, env={**os.environ, **env}, check=True, capture_output=True)
    repo = f"{registry.host}/ml/from-git"
    digest = push(mloci, bundle, repo, "--pack", "tests=raw")
    inspected = json.loads(mloci("inspect", f"{repo}@{digest}", "--json").stdout)
    assert inspected["bundle"]["git_sha"] and inspected["bundle"]["pack"]["raw"] == ["tests"]
    assert "git_sha" not in json.loads((bundle / "manifest.json").read_text())

    out = tmp_path / "elsewhere" / "pulled"  # outside the git work tree
    assert mloci("pull", f"{repo}@{digest}", "-o", out).exit_code == 0
    assert (out / "manifest.json").read_bytes() == (bundle / "manifest.json").read_bytes()
    assert push(mloci, out, repo) == digest

    # Once manifest.json is edited it is another bundle: nothing is taken from the old metadata.
    edited = (out / "manifest.json").read_text().replace('"1.0.0"', '"1.0.1"')
    (out / "manifest.json").write_text(edited)
    again = json.loads(mloci("inspect", f"{repo}:1.0.1@{push(mloci, out, repo)}", "--json").stdout)
    assert again["bundle"].get("git_sha") is None
