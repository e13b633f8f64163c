"""Large blobs pulled through faults: breaks mid-chunk, a server ignoring Range, damaged bytes, Ctrl-C.

Each test checks the pulled bytes against the pushed ones, so a byte lost or hashed twice when the
connection breaks mid-chunk would show.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultproxy import Fault, FaultProxy
from helpers import Registry, Runner, random_bundle

SIZE = (24 << 20) + 4321  # not a whole number of pages or blocks


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return random_bundle(tmp_path, "big", "model.bin", SIZE)


def blob(bundle: Path) -> str:
    """The path regex of the model file's blob (faults must not be used up by the small blobs)."""
    return "/blobs/sha256:" + hashlib.sha256((bundle / "model.bin").read_bytes()).hexdigest()


def push(mloci: Runner, bundle: Path, repo: str) -> str:
    result = mloci("push", bundle, repo, "--json")
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["digest"])


def test_breaks_mid_block_resume_with_range_and_lose_no_byte(
    mloci: Runner, registry: Registry, proxy: FaultProxy, bundle: Path, tmp_path: Path
) -> None:
    digest = push(mloci, bundle, f"{registry.host}/ml/big")
    # Cut inside a page, inside a 4 MiB block, three times in a row at different places.
    proxy.add(Fault("GET", blob(bundle), cut_response_after=(5 << 20) + 123, times=1))
    proxy.add(Fault("GET", blob(bundle), cut_response_after=(3 << 20) + 4097, times=1))
    out = tmp_path / "out"
    result = mloci("pull", f"{proxy.host}/ml/big@{digest}", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert (out / "model.bin").read_bytes() == (bundle / "model.bin").read_bytes()
    assert proxy.count("GET", blob(bundle)) == 3
    assert registry.requests_matching(r'"GET /v2/ml/big/blobs/sha256:[0-9a-f]+ HTTP/1.1" 206') == 2


def test_a_server_ignoring_range_after_a_break_is_skipped_past(
    mloci: Runner, registry: Registry, proxy: FaultProxy, bundle: Path, tmp_path: Path
) -> None:
    digest = push(mloci, bundle, f"{registry.host}/ml/big")
    proxy.add(Fault("GET", blob(bundle), cut_response_after=(9 << 20) + 77, times=1))
    proxy.add(Fault("GET", blob(bundle), drop_range=True, times=5))
    out = tmp_path / "out"
    result = mloci("pull", f"{proxy.host}/ml/big@{digest}", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert (out / "model.bin").read_bytes() == (bundle / "model.bin").read_bytes()
    assert proxy.count("GET", blob(bundle)) == 2  # cut, then whole again (200) with the prefix skipped


def test_bytes_that_do_not_match_are_refused_and_nothing_is_left(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    digest = push(mloci, bundle, f"{registry.host}/ml/big")
    (data,) = (p for p in registry.storage.rglob("data") if p.stat().st_size == SIZE)
    with data.open("r+b") as handle:  # the registry's copy, damaged on its disk
        handle.seek(SIZE - 10)
        flipped = bytes([handle.read(1)[0] ^ 0xFF])
        handle.seek(SIZE - 10)
        handle.write(flipped)
    parent = tmp_path / "pulls"
    parent.mkdir()
    result = mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", parent / "out")
    assert result.exit_code == 6, result.stderr
    assert "does not match" in result.stderr and "Traceback" not in result.stderr
    assert list(parent.iterdir()) == []  # no target, no staging, no partial of wrong bytes


def test_interrupted_then_resumed_from_the_bytes_that_arrived(
    mloci: Runner, registry: Registry, proxy: FaultProxy, bundle: Path, tmp_path: Path, mloci_home: Path
) -> None:
    digest = push(mloci, bundle, f"{registry.host}/ml/big")
    proxy.add(Fault("GET", blob(bundle), delay_per_mib=0.3, times=10))
    parent = tmp_path / "pulls"
    parent.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-m", "mloci", "pull", f"{proxy.host}/ml/big@{digest}", "-o", str(parent / "out")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "MLOCI_HOME": str(mloci_home)},
    )
    partials = parent / ".mloci-partial-out"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(partials.glob("*.json")):
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert b"Traceback" not in err
    assert not (parent / "out").exists()
    result = mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", parent / "out", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["bytesResumed"] > 0
    assert (parent / "out" / "model.bin").read_bytes() == (bundle / "model.bin").read_bytes()
    assert sorted(p.name for p in parent.iterdir()) == ["out"]
