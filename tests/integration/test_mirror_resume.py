"""A pull through a registry mirror killed with SIGKILL resumes on the next run (real registries).

The mirror is distribution in pull-through-cache mode in front of an upstream distribution,
configured in registries.conf; a proxy in front of the cache slows blob downloads so the first
pull can be killed once its partial download's record says 60 % arrived. The next pull goes
through the mirror again and reuses those bytes — asking with ``Range``, or, when the mirror
ignores ``Range`` (the proxy drops the header, as a cache still fetching upstream answers 200),
reading past them — and the result is verified against the digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultproxy import Fault, FaultProxy
from helpers import Registry, Runner, random_bundle
from test_resume import kill_when, received, spawn

SIZE = 64 << 20


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


@pytest.fixture
def mirror(cache: Registry) -> Iterator[FaultProxy]:
    proxy = FaultProxy(cache.port or 0)
    yield proxy
    proxy.close()


def cache_gets(cache: Registry, digest: str) -> list[int]:
    """The statuses of the cache's GETs of the blob ``digest``, from its access log."""
    return [
        int(status)
        for status in re.findall(rf'"GET /v2/ml/big/blobs/{digest} HTTP/1.1" (\d+)', cache.log.read_text())
    ]


@pytest.mark.parametrize("ignores_range", [False, True], ids=["ranged", "mirror-ignores-range"])
def test_a_pull_through_a_mirror_killed_midway_resumes(
    mloci: Runner,
    upstream: Registry,
    cache: Registry,
    mirror: FaultProxy,
    tmp_path: Path,
    mloci_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    ignores_range: bool,
) -> None:
    bundle = random_bundle(tmp_path, "big", "model.bin", SIZE)
    blob = "sha256:" + hashlib.sha256((bundle / "model.bin").read_bytes()).hexdigest()
    conf = tmp_path / "registries.conf"
    conf.write_text(
        f'[[registry]]\nlocation = "{upstream.host}"\n'
        f'[[registry.mirror]]\nlocation = "{mirror.host}"\ninsecure = true\n'
    )
    monkeypatch.setenv("MLOCI_REGISTRIES_CONF", str(conf))
    result = mloci("push", bundle, f"{upstream.host}/ml/big", "--json")
    assert result.exit_code == 0, result.stderr
    ref = f"{upstream.host}/ml/big@{json.loads(result.stdout)['digest']}"

    mirror.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=0.04, times=10))
    partials = tmp_path / ".mloci-partial-out"
    kill_when(
        spawn(["pull", ref, "-o", str(tmp_path / "out")], mloci_home),
        lambda: received(partials) >= 0.6 * SIZE,
        timeout=30,
    )
    kept = received(partials)
    assert not (tmp_path / "out").exists()
    # The cache goes on storing what it proxied: once it holds the blob it can serve ranges.
    deadline = time.monotonic() + 20
    while not cache.blob_data_path(blob).is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    mirror.faults.clear()
    if ignores_range:
        mirror.add(Fault("GET", r"/blobs/sha256:", drop_range=True, times=10))
    # The killed run's GET is logged once the proxy has given up on it: count from after it.
    while not cache_gets(cache, blob) and time.monotonic() < deadline + 10:
        time.sleep(0.05)
    before = len(cache_gets(cache, blob))

    result = mloci("pull", ref, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr  # the mirror served it: the origin was not needed
    assert json.loads(result.stdout)["bytesResumed"] >= kept
    gets = cache_gets(cache, blob)
    assert gets[before:] == [200 if ignores_range else 206], gets
    assert (tmp_path / "out" / "model.bin").read_bytes() == (bundle / "model.bin").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".mloci")) == []
    print(
        f"killed at {kept / SIZE:.0%} through the mirror; resumed {'past a 200' if ignores_range else 'with Range'}"
    )


def test_a_mirror_that_breaks_off_mid_blob_hands_the_partial_to_the_origin(
    mloci: Runner,
    upstream: Registry,
    cache: Registry,
    mirror: FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = random_bundle(tmp_path, "big", "model.bin", SIZE)
    blob = "sha256:" + hashlib.sha256((bundle / "model.bin").read_bytes()).hexdigest()
    conf = tmp_path / "registries.conf"
    conf.write_text(
        f'[[registry]]\nlocation = "{upstream.host}"\n'
        f'[[registry.mirror]]\nlocation = "{mirror.host}"\ninsecure = true\n'
    )
    monkeypatch.setenv("MLOCI_REGISTRIES_CONF", str(conf))
    result = mloci("push", bundle, f"{upstream.host}/ml/big", "--json")
    assert result.exit_code == 0, result.stderr
    ref = f"{upstream.host}/ml/big@{json.loads(result.stdout)['digest']}"
    # The mirror sends 24 MiB of the model, drops the connection, then no longer has the blob.
    mirror.add(Fault("GET", rf"/blobs/{blob}", cut_response_after=24 << 20))
    mirror.add(Fault("GET", rf"/blobs/{blob}", status=404, times=50))

    result = mloci("pull", ref, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    assert f"mirror {mirror.host} skipped" in result.stderr
    assert json.loads(result.stdout)["bytesResumed"] == 0  # none came from an earlier run
    # The origin sent only the rest: one ranged GET from mloci (the cache's own GETs are whole).
    ranged = [
        int(sent)
        for sent in re.findall(rf'"GET /v2/ml/big/blobs/{blob} HTTP/1.1" 206 (\d+)', upstream.log.read_text())
    ]
    assert len(ranged) == 1 and ranged[0] <= SIZE - (16 << 20)
    assert (tmp_path / "out" / "model.bin").read_bytes() == (bundle / "model.bin").read_bytes()
