"""Re-pushing an unchanged bundle reads no file again; any change is noticed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import Registry, Runner, random_bundle

import mloci.ops.push
from mloci.bundle.digests import DigestCache
from mloci.types.digest import hash_file


@pytest.fixture
def large_bundle(tmp_path: Path) -> Path:
    return random_bundle(tmp_path, "large", "weights.bin", 3 << 20)


def forbid_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path) -> tuple[object, int]:
        if path.stat().st_size >= 1 << 20:
            raise AssertionError(f"{path} was read again")
        return hash_file(path)

    monkeypatch.setattr(mloci.ops.push, "hash_file", refuse)


def test_unchanged_files_are_not_rehashed_on_repush(
    mloci: Runner, registry: Registry, large_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = f"{registry.host}/ml/large"
    first = json.loads(mloci("push", large_bundle, repo, "--json").stdout)
    forbid_hashing(monkeypatch)
    again = mloci("push", large_bundle, repo, "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["unchanged"] is True
    assert json.loads(again.stdout)["digest"] == first["digest"]


def test_a_changed_file_is_rehashed(mloci: Runner, registry: Registry, large_bundle: Path) -> None:
    repo = f"{registry.host}/ml/large"
    first = json.loads(mloci("push", large_bundle, repo, "--json").stdout)
    weights = large_bundle / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[0] ^= 1
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns))
    second = mloci("push", large_bundle, repo, "--force", "--json")
    assert json.loads(second.stdout)["digest"] != first["digest"]


def test_local_push_reads_each_file_once(
    mloci: Runner, large_bundle: Path, mloci_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_hashing(monkeypatch)  # the local store ingests (copy + hash) instead of hashing separately
    result = mloci("push", large_bundle, "--json")
    assert result.exit_code == 0, result.stderr
    digest = "sha256:" + __import__("hashlib").sha256((large_bundle / "weights.bin").read_bytes()).hexdigest()
    assert (mloci_home / "oci" / "blobs" / "sha256" / digest.split(":")[1]).is_file()


def test_a_broken_cache_never_breaks_a_push(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_text("this is not a database")
    cache = DigestCache(path)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (2 << 20))
    assert cache.hasher()(big, "big.bin") == hash_file(big)
    cache.close()


@pytest.fixture
def eager_bundle(tmp_path: Path) -> Path:
    return random_bundle(tmp_path, "eager", "weights.bin", 40 << 20)


def test_large_new_files_upload_while_hashing(
    mloci: Runner, registry: Registry, eager_bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/eager"
    pushed = mloci("push", eager_bundle, repo, "--json")
    assert pushed.exit_code == 0, pushed.stderr
    result = json.loads(pushed.stdout)
    assert (
        result["blobsUploaded"] == 4 and result["bytesUploaded"] > 40 << 20
    )  # config, 2 manifest layers, weights
    out = tmp_path / "out"
    assert mloci("pull", f"{repo}@{result['digest']}", "-o", out).exit_code == 0
    assert (out / "weights.bin").read_bytes() == (eager_bundle / "weights.bin").read_bytes()


def test_eager_upload_is_abandoned_when_the_registry_has_the_blob(
    mloci: Runner, registry: Registry, eager_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = f"{registry.host}/ml/eager"
    assert mloci("push", eager_bundle, repo).exit_code == 0
    manifest = eager_bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace("1.0.0", "1.0.1"))
    monkeypatch.setenv("MLOCI_NO_DIGEST_CACHE", "1")  # as on a fresh CI machine
    second = mloci("push", eager_bundle, repo, "--json")
    assert second.exit_code == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["blobsSkipped"] == 1  # the weights
    assert registry.requests_matching(r'"DELETE /v2/ml/eager/blobs/uploads/') == 1
