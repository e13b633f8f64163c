"""Pulls through a pull-through cache (distribution's proxy mode) configured in registries.conf."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Registry, Runner


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Registry]:
    (tmp_path / "upstream").mkdir()
    registry = Registry(tmp_path / "upstream")
    registry.start()
    yield registry
    registry.stop()


@pytest.fixture
def cache(tmp_path: Path, upstream: Registry) -> Iterator[Registry]:
    (tmp_path / "cache").mkdir()
    registry = Registry(tmp_path / "cache", extra_config=f"proxy:\n  remoteurl: http://{upstream.host}\n")
    registry.start()
    yield registry
    registry.stop()


def configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, origin: str, *mirror_hosts: str) -> None:
    conf = tmp_path / "registries.conf"
    text = f'[[registry]]\nlocation = "{origin}"\n'
    for host in mirror_hosts:
        text += f'[[registry.mirror]]\nlocation = "{host}"\ninsecure = true\n'
    conf.write_text(text)
    monkeypatch.setenv("MLOCI_REGISTRIES_CONF", str(conf))


def push(mloci: Runner, bundle: Path, repo: str) -> str:
    result = mloci("push", bundle, repo, "--json")
    assert result.exit_code == 0, result.stderr
    digest: str = json.loads(result.stdout)["digest"]
    return digest


def test_pulls_go_through_the_cache_pushes_to_the_origin(
    mloci: Runner,
    upstream: Registry,
    cache: Registry,
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(monkeypatch, tmp_path, upstream.host, cache.host)
    repo = f"{upstream.host}/ml/churn-model"
    digest = push(mloci, bundle, repo)
    assert cache.requests_matching(r'"(PUT|POST|PATCH) ') == 0  # pushes never touch the mirror

    out = tmp_path / "out"
    pulled = mloci("pull", f"{repo}:1.0.0", "-o", out, "--json")
    assert pulled.exit_code == 0, pulled.stderr
    assert json.loads(pulled.stdout)["digest"] == digest and "warning" not in pulled.stderr
    assert (out / "model.onnx").read_bytes() == (bundle / "model.onnx").read_bytes()
    assert cache.requests_matching(r'"GET /v2/ml/churn-model/blobs/') >= 3
    # The cache stores what it proxied in the background: wait until it holds every blob.
    manifest = json.loads(mloci("inspect", f"{repo}@{digest}", "--json").stdout)["manifest"]
    blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    deadline = time.monotonic() + 20
    while not all(cache.blob_data_path(b).is_file() for b in blobs) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    upstream_blob_gets = upstream.requests_matching(r'"GET /v2/ml/churn-model/blobs/')
    # The cache now holds the content: a second pull reads it there, not upstream.
    again = mloci("pull", f"{repo}@{digest}", "-o", tmp_path / "again")
    assert again.exit_code == 0, again.stderr
    assert upstream.requests_matching(r'"GET /v2/ml/churn-model/blobs/') == upstream_blob_gets


def test_a_mirror_that_is_down_is_skipped_with_a_warning(
    mloci: Runner, upstream: Registry, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, tmp_path, upstream.host, "127.0.0.1:9")  # discard port: nothing listens
    digest = push(mloci, bundle, f"{upstream.host}/ml/churn-model")
    out = tmp_path / "out"
    pulled = mloci("pull", f"{upstream.host}/ml/churn-model:1.0.0", "-o", out, "--json")
    assert pulled.exit_code == 0, pulled.stderr
    assert json.loads(pulled.stdout)["digest"] == digest
    assert "mloci: warning: mirror 127.0.0.1:9 skipped" in pulled.stderr


def test_a_corrupt_mirror_is_refused_and_the_origin_used(
    mloci: Runner,
    upstream: Registry,
    cache: Registry,
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(monkeypatch, tmp_path, upstream.host, cache.host)
    repo = f"{upstream.host}/ml/churn-model"
    digest = push(mloci, bundle, repo)
    assert mloci("pull", f"{repo}@{digest}", "-o", tmp_path / "warm").exit_code == 0  # fills the cache
    inspected = json.loads(mloci("inspect", f"{repo}@{digest}", "--json").stdout)
    weights = next(f for f in inspected["files"] if f["path"] == "model.onnx")
    cached = cache.blob_data_path(weights["digest"])
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))

    out = tmp_path / "out"
    pulled = mloci("pull", f"{repo}@{digest}", "-o", out)
    assert pulled.exit_code == 0, pulled.stderr
    assert "content does not match" in pulled.stderr and "pulling again from" in pulled.stderr
    assert (out / "model.onnx").read_bytes() == (bundle / "model.onnx").read_bytes()
