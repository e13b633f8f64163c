"""Faults a real network and real registries produce: drops mid-body, 5xx, 429, outages, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultproxy import Fault, FaultProxy
from helpers import Registry, Runner, random_bundle


@pytest.fixture
def big_bundle(tmp_path: Path) -> Path:
    return random_bundle(tmp_path, "big", "model.onnx", 6 << 20)


def pushed_digest(mloci: Runner, bundle: Path, repo: str) -> str:
    result = mloci("push", bundle, repo, "--json")
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["digest"])


def test_download_dropped_mid_body_resumes_with_range(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big_bundle: Path, tmp_path: Path
) -> None:
    digest = pushed_digest(mloci, big_bundle, f"{registry.host}/ml/big")
    proxy.add(Fault("GET", r"/blobs/sha256:", cut_response_after=(2 << 20) + 123, times=2))
    out = tmp_path / "out"
    result = mloci("pull", f"{proxy.host}/ml/big@{digest}", "-o", out, "--concurrency", "1")
    assert result.exit_code == 0, result.stderr
    assert (out / "model.onnx").read_bytes() == (big_bundle / "model.onnx").read_bytes()
    assert registry.requests_matching(r'"GET /v2/ml/big/blobs/sha256:') >= 3
    assert "Range" not in result.stderr


def test_upload_dropped_mid_body_resumes_from_the_registry_offset(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big_bundle: Path, tmp_path: Path
) -> None:
    proxy.add(Fault("PATCH", r"/blobs/uploads/", cut_request_after=3 << 20))
    digest = pushed_digest(mloci, big_bundle, f"{proxy.host}/ml/big")
    # The upload resumed: a status GET on the session, then a second PATCH for the rest.
    assert proxy.count("GET", r"/blobs/uploads/") >= 1
    assert proxy.count("PATCH", r"/blobs/uploads/") >= 3
    out = tmp_path / "out"
    assert mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", out).exit_code == 0
    assert (out / "model.onnx").read_bytes() == (big_bundle / "model.onnx").read_bytes()


def test_server_errors_are_retried(
    mloci: Runner, registry: Registry, proxy: FaultProxy, bundle: Path, tmp_path: Path
) -> None:
    digest = pushed_digest(mloci, bundle, f"{registry.host}/ml/churn")
    proxy.add(Fault("GET", r"/manifests/", status=503, times=2))
    proxy.add(Fault("GET", r"/blobs/", status=500, times=1))
    result = mloci("pull", f"{proxy.host}/ml/churn@{digest}", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr


def test_429_honours_retry_after(
    mloci: Runner, registry: Registry, proxy: FaultProxy, bundle: Path, tmp_path: Path
) -> None:
    digest = pushed_digest(mloci, bundle, f"{registry.host}/ml/churn")
    proxy.add(Fault("GET", r"/manifests/", status=429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    result = mloci("inspect", f"{proxy.host}/ml/churn@{digest}")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started >= 1.0


def test_persistent_server_errors_fail_clearly(
    mloci: Runner, registry: Registry, proxy: FaultProxy, bundle: Path, tmp_path: Path
) -> None:
    pushed_digest(mloci, bundle, f"{registry.host}/ml/churn")
    proxy.add(Fault("HEAD", r"/manifests/", status=503, times=100))
    proxy.add(Fault("GET", r"/manifests/", status=503, times=100))
    result = mloci("pull", f"{proxy.host}/ml/churn:1.0.0", "-o", tmp_path / "out")
    assert result.exit_code == 9
    assert "HTTP 503" in result.stderr and "injected fault" in result.stderr
    assert not (tmp_path / "out").exists()


def test_client_errors_are_not_retried(
    mloci: Runner, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.add(Fault("GET", r"/manifests/", status=400, times=100))
    result = mloci("pull", f"{proxy.host}/ml/churn:1.0.0", "-o", tmp_path / "out")
    assert result.exit_code == 9
    assert proxy.count("GET", r"/manifests/") == 1


def test_refused_connection_fails_within_seconds(mloci: Runner, tmp_path: Path) -> None:
    started = time.monotonic()
    result = mloci("pull", "127.0.0.1:9/ml/churn:1.0.0", "-o", tmp_path / "out")
    assert result.exit_code == 8 and "connection refused" in result.stderr
    assert time.monotonic() - started < 5


def test_registry_restart_between_push_and_pull(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    digest = pushed_digest(mloci, bundle, f"{registry.host}/ml/churn")
    port = registry.port
    registry.stop()
    down = mloci("pull", f"{registry.host}/ml/churn@{digest}", "-o", tmp_path / "a")
    assert down.exit_code == 8
    registry.start(port=port)
    up = mloci("pull", f"{registry.host}/ml/churn@{digest}", "-o", tmp_path / "a")
    assert up.exit_code == 0, up.stderr


def run_in_background(args: list[str], home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "MLOCI_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from mloci.cli import main; sys.exit(main(sys.argv[1:]))", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_ctrl_c_mid_download_leaves_nothing(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big_bundle: Path, tmp_path: Path, mloci_home: Path
) -> None:
    digest = pushed_digest(mloci, big_bundle, f"{registry.host}/ml/big")
    proxy.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=2.0, times=10))
    parent = tmp_path / "pulls"
    parent.mkdir()
    child = run_in_background(
        ["pull", f"{proxy.host}/ml/big@{digest}", "-o", str(parent / "out")], mloci_home
    )
    deadline = time.monotonic() + 20
    while not any(p.name.startswith(".out.mloci-") for p in parent.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    # Nothing at the target; only the bytes received, kept for the next pull to resume (then removed).
    assert [p.name for p in parent.iterdir()] in ([], [".mloci-partial-out"])
    for kept in (parent / ".mloci-partial-out").glob("*"):
        assert re.fullmatch(r"sha256-[0-9a-f]{64}(\.json)?", kept.name), kept
    again = mloci("pull", f"{proxy.host}/ml/big@{digest}", "-o", parent / "out")
    assert again.exit_code == 0, again.stderr
    assert [p.name for p in parent.iterdir()] == ["out"]


def test_ctrl_c_mid_upload_cancels_the_session(
    registry: Registry, proxy: FaultProxy, big_bundle: Path, mloci_home: Path
) -> None:
    proxy.add(Fault("PATCH", r"/blobs/uploads/", delay_per_mib=0.0, times=0))
    child = run_in_background(
        ["push", str(big_bundle), f"{proxy.host}/ml/big", "--chunk-size", "1048576"], mloci_home
    )
    deadline = time.monotonic() + 20
    while proxy.count("PATCH", r"/blobs/uploads/") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert proxy.count("DELETE", r"/blobs/uploads/") >= 1


def test_a_registry_refusing_patch_gets_a_monolithic_put(
    mloci: Runner, registry: Registry, proxy: FaultProxy, bundle: Path, tmp_path: Path
) -> None:
    """GHCR answers 416 to large chunks and GAR has no PATCH: mloci falls back to one PUT per blob."""
    proxy.add(Fault("PATCH", r"/blobs/uploads/", status=416, times=1000))
    digest = pushed_digest(mloci, bundle, f"{proxy.host}/ml/churn")
    # Learnt from the first refusals (at most one per concurrent upload), then monolithic for every blob.
    assert proxy.count("PATCH", r"/blobs/uploads/") <= 4
    out = tmp_path / "out"
    assert mloci("pull", f"{registry.host}/ml/churn@{digest}", "-o", out).exit_code == 0
    assert (out / "model.onnx").read_bytes() == (bundle / "model.onnx").read_bytes()


def test_a_proxy_error_mid_upload_resumes_instead_of_failing(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big_bundle: Path, tmp_path: Path
) -> None:
    proxy.add(Fault("PATCH", r"/blobs/uploads/", status=502))
    digest = pushed_digest(mloci, big_bundle, f"{proxy.host}/ml/big")
    out = tmp_path / "out"
    assert mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", out).exit_code == 0
    assert (out / "model.onnx").read_bytes() == (big_bundle / "model.onnx").read_bytes()
