"""Third-party clients read what mloci writes: skopeo (containers/image) and the oras Python SDK."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from helpers import Registry, Runner

SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (apt-get install skopeo)")


def skopeo(*args: str) -> bytes:
    assert SKOPEO is not None
    done = subprocess.run([SKOPEO, *args], capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def pushed(mloci: Runner, *args: object) -> dict[str, str]:
    result = mloci("push", *args, "--json")
    assert result.exit_code == 0, result.stderr
    value: dict[str, str] = json.loads(result.stdout)
    return value


def our_manifest_bytes(mloci: Runner, ref: str) -> bytes:
    info = json.loads(mloci("inspect", ref, "--json").stdout)
    return json.dumps(info["manifest"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@needs_skopeo
def test_skopeo_reads_exactly_our_manifest_bytes_from_the_registry(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = pushed(mloci, bundle, repo)["digest"]
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{repo}@{digest}")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    assert raw == our_manifest_bytes(mloci, f"{repo}@{digest}")


@needs_skopeo
def test_local_store_is_an_oci_layout_skopeo_reads_and_copies(
    mloci: Runner, registry: Registry, bundle: Path, mloci_home: Path, tmp_path: Path
) -> None:
    digest = pushed(mloci, bundle)["digest"]
    layout = mloci_home / "oci"
    raw = skopeo("inspect", "--raw", f"oci:{layout}:churn-model:1.0.0")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    # skopeo copies the layout into the registry byte for byte; mloci then pulls it from there.
    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci:{layout}:churn-model:1.0.0",
        f"docker://{registry.host}/copied/churn-model:1.0.0",
    )
    out = tmp_path / "out"
    result = mloci("pull", f"{registry.host}/copied/churn-model@{digest}", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert (out / "model.onnx").read_bytes() == (bundle / "model.onnx").read_bytes()


def test_oras_sdk_pulls_our_files(mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path) -> None:
    oras_client = pytest.importorskip("oras.client")
    repo = f"{registry.host}/ml/churn-model"
    pushed(mloci, bundle, repo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = oras_client.OrasClient(hostname=registry.host, insecure=True)
        files = client.pull(target=f"{repo}:1.0.0", outdir=str(tmp_path / "oras"))
    names = sorted(Path(f).name for f in files)
    assert names == [
        ".mloci-manifest.json",  # mloci's normalized metadata: to other tools, a hidden doc file
        "golden_inputs.json",
        "golden_outputs.json",
        "manifest.json",
        "metrics.json",
        "model.onnx",
        "requirements.txt",
        "train.py",
    ]
    assert (tmp_path / "oras" / "model.onnx").read_bytes() == (bundle / "model.onnx").read_bytes()
    assert (tmp_path / "oras" / "manifest.json").read_bytes() == (bundle / "manifest.json").read_bytes()


def test_mloci_pulls_what_the_oras_sdk_pushed(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    oras_client = pytest.importorskip("oras.client")
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x01" * 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = oras_client.OrasClient(hostname=registry.host, insecure=True)
        client.push(
            target=f"{registry.host}/oras/thing:v1", files=[str(source)], disable_path_validation=True
        )
    out = tmp_path / "out"
    result = mloci("pull", f"{registry.host}/oras/thing:v1", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert (out / "weights.bin").read_bytes() == source.read_bytes()
