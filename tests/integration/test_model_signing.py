"""OpenSSF model signing: interop both ways with the real ``model_signing`` CLI (model-signing on PyPI)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import Registry, Runner

MODEL_SIGNING = shutil.which("model_signing") or str(Path(sys.executable).with_name("model_signing"))


@pytest.fixture(autouse=True)
def trust_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "")
    if not Path(MODEL_SIGNING).exists():
        pytest.fail("model_signing is not installed (pip install model-signing pyopenssl)")


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
    (bundle / "weights").mkdir()
    (bundle / "weights" / "shard-0.bin").write_bytes(b"\x00\x01" * 4096)
    (bundle / ".gitignore").write_text("*.tmp\n")
    # Path order differs from string order here ("a/b" before "a.txt"); the digest depends on it.
    (bundle / "a").mkdir()
    (bundle / "a" / "b").write_text("b")
    (bundle / "a.txt").write_text("a")
    return bundle


def model_signing(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MODEL_SIGNING, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_model_signing_verifies_what_mloci_signs(mloci: Runner, model: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    signed = mloci("sign", model, "--model-signing", "--key", private, "--json")
    assert signed.exit_code == 0, signed.stderr
    result = json.loads(signed.stdout)
    assert result["signature"] == str(model / "model.sig") and result["files"] == 10  # golden data included
    verified = model_signing(
        "verify", "key", model, "--public_key", public, "--signature", model / "model.sig"
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    (model / "weights" / "shard-0.bin").write_bytes(b"tampered")
    refused = model_signing(
        "verify", "key", model, "--public_key", public, "--signature", model / "model.sig"
    )
    assert refused.returncode != 0


def test_mloci_verifies_what_model_signing_signs_and_names_what_changed(
    mloci: Runner, model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    signature = tmp_path / "model.sig"
    made = model_signing("sign", "key", model, "--private_key", private, "--signature", signature)
    assert made.returncode == 0, made.stdout + made.stderr
    ok = mloci("verify", model, "--model-signing", "--key", public, "--signature", signature, "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["predicateType"] == "https://model_signing/signature/v1.0"

    (model / "weights" / "shard-0.bin").write_bytes(b"tampered")
    (model / "notes.txt").write_text("added after signing")
    changed = mloci("verify", model, "--model-signing", "--key", public, "--signature", signature)
    assert changed.exit_code == 6
    assert "changed: weights/shard-0.bin" in changed.stderr and "not signed: notes.txt" in changed.stderr

    stranger = tmp_path / "stranger.pub"
    stranger.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert (
        mloci("verify", model, "--model-signing", "--key", stranger, "--signature", signature).exit_code == 6
    )


def test_model_signatures_refuse_symlinks(mloci: Runner, model: Path, keys: tuple[Path, Path]) -> None:
    private, _ = keys
    (model / "link").symlink_to("/etc/hostname")
    result = mloci("sign", model, "--model-signing", "--key", private)
    assert result.exit_code == 2 and "symbolic link" in result.stderr
    assert not (model / "model.sig").exists()


def test_a_model_signed_without_manifest_json_survives_push_and_pull(
    mloci: Runner, registry: Registry, model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    signature = model / "model.sig"
    made = model_signing(
        "sign", "key", model, "--private_key", private, "--signature", signature,
        "--ignore-paths", model / "manifest.json", "--ignore-paths", model / ".mloci",
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    repo = f"{registry.host}/ml/model-signed"
    assert mloci("push", model, repo).exit_code == 0
    out = tmp_path / "pulled"
    assert mloci("pull", f"{repo}:1.0.0", "-o", out).exit_code == 0
    assert (out / "model.sig").is_file() and (out / ".mloci").is_dir()
    theirs = model_signing("verify", "key", out, "--public_key", public, "--signature", out / "model.sig")
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert mloci("verify", out, "--model-signing", "--key", public).exit_code == 0

    mine = tmp_path / "mine"
    shutil.copytree(out, mine, ignore=shutil.ignore_patterns(".mloci", "model.sig"))
    signed = mloci("sign", mine, "--model-signing", "--key", private, "--ignore-path", "manifest.json")
    assert signed.exit_code == 0, signed.stderr
    assert (
        model_signing(
            "verify", "key", mine, "--public_key", public, "--signature", mine / "model.sig"
        ).returncode
        == 0
    )


def test_a_model_signature_referrer_covers_exactly_the_files_pull_writes(
    mloci: Runner, registry: Registry, model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    repo = f"{registry.host}/ml/model-referrer"
    assert mloci("push", model, repo).exit_code == 0
    signed = mloci("sign", f"{repo}:1.0.0", "--model-signing", "--key", private, "--json")
    assert signed.exit_code == 0, signed.stderr
    ok = mloci("verify", f"{repo}:1.0.0", "--model-signing", "--key", public, "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["signatures"][0]["format"] == "bundle"

    # The referrer's bundle is what model_signing verifies over the pulled directory.
    out = tmp_path / "pulled"
    assert mloci("pull", f"{repo}:1.0.0", "-o", out).exit_code == 0
    tree = json.loads(mloci("discover", f"{repo}:1.0.0", "--json").stdout)
    [node] = [n for n in tree["referrers"] if "model_signing" in (n["kind"] or "")]
    sig = tmp_path / "model.sig"
    fetched = mloci("pull", f"{repo}@{node['digest']}", "-o", tmp_path / "sig")
    assert fetched.exit_code == 0, fetched.stderr
    shutil.copy(tmp_path / "sig" / "model.sig", sig)
    theirs = model_signing("verify", "key", out, "--public_key", public, "--signature", sig)
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert mloci("verify", out, "--model-signing", "--key", public, "--signature", sig).exit_code == 0

    stranger = tmp_path / "stranger.pub"
    stranger.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert mloci("verify", f"{repo}:1.0.0", "--model-signing", "--key", stranger).exit_code == 6
