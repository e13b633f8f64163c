"""Transfers killed with SIGKILL resume on the next run instead of starting over (real registry).

Pulls: ``mloci pull`` runs as a subprocess behind a proxy that slows blob downloads, is killed
with ``-9`` once its partial download's record says a given share arrived, and is run again:
the registry's access log shows the second run fetched only the rest (a ``206``), the result is
verified, and nothing is left beside the target. Pushes: uploads go in PATCH chunks and the
proxy holds one chunk until the push is killed (distribution refuses to continue a session
whose last PATCH was cut mid-body, so the kill must land between chunks to be resumable); the
next push continues the recorded session.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultproxy import Fault, FaultProxy
from helpers import Registry, Runner, random_bundle

SIZE = 96 << 20
MODEL_DIGEST = ""
CHUNK = 8 << 20


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    global MODEL_DIGEST  # noqa: PLW0603  (the blob the access-log checks look for)
    bundle = random_bundle(tmp_path_factory.mktemp("resume"), "big", "model.bin", SIZE)
    MODEL_DIGEST = "sha256:" + hashlib.sha256((bundle / "model.bin").read_bytes()).hexdigest()
    return bundle


def spawn(args: list[str], home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mloci", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "MLOCI_HOME": str(home)},
    )


def kill_when(child: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert child.poll() is None, (
            f"finished before the kill point: {child.stderr and child.stderr.read()!r}"
        )
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL


def received(partials: Path) -> int:
    """Bytes from the start that a partial download's record says arrived."""
    for sidecar in partials.glob("*.json"):
        try:
            spans = json.loads(sidecar.read_text())["spans"]
        except (OSError, ValueError, KeyError):
            continue
        return sum(end - start for start, end in spans)
    return 0


def killed_pull(proxy: FaultProxy, digest: str, out: Path, home: Path, share: float, *extra: str) -> Path:
    """Pull the model into ``out`` through ``proxy`` (slowed), SIGKILL it once ``share`` of the blob
    arrived (any byte for 0), and return the partial directory it left."""
    proxy.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=0.1 if extra else 0.04, times=20))
    partials = out.parent / f".mloci-partial-{out.name}"
    args = ["pull", f"{proxy.host}/ml/big@{digest}", "-o", str(out), *extra]
    kill_when(spawn(args, home), lambda: received(partials) >= max(1, share * SIZE))
    return partials


def pushed(mloci: Runner, bundle: Path, repo: str) -> str:
    result = mloci("push", bundle, repo, "--json")
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["digest"])


def settled(registry: Registry, count: int = 1) -> int:
    """The number of blob GETs logged, once the killed run's (logged when the proxy drops it) is there."""
    deadline = time.monotonic() + 10
    while len(blob_gets(registry)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(blob_gets(registry))


def blob_gets(registry: Registry) -> list[tuple[int, int]]:
    """(status, bytes) of every GET of the model's blob in the registry's access log."""
    found = re.findall(
        rf'"GET /v2/ml/big/blobs/{MODEL_DIGEST} HTTP/1.1" (\d+) (\d+)', registry.log.read_text()
    )
    return [(int(status), int(size)) for status, size in found]


@pytest.mark.parametrize("share", [0.3, 0.6])
def test_a_pull_killed_midway_resumes_from_what_arrived(
    mloci: Runner,
    registry: Registry,
    proxy: FaultProxy,
    big: Path,
    tmp_path: Path,
    mloci_home: Path,
    share: float,
) -> None:
    digest = pushed(mloci, big, f"{registry.host}/ml/big")
    parent = tmp_path / "pulls"
    parent.mkdir()
    partials = killed_pull(proxy, digest, parent / "out", mloci_home, share)
    kept = received(partials)
    assert kept >= share * SIZE
    assert not (parent / "out").exists()
    before = settled(registry)

    result = mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", parent / "out", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["bytesResumed"] >= kept
    # The second run fetched only the rest of the blob: one ranged GET, not the whole.
    (status, sent), *more = blob_gets(registry)[before:]
    assert (status, more) == (206, [])
    assert sent <= SIZE - kept
    assert (parent / "out" / "model.bin").read_bytes() == (big / "model.bin").read_bytes()
    assert sorted(p.name for p in parent.iterdir()) == ["out"]  # the partial is gone once published
    print(f"killed at {kept / SIZE:.0%}; the next run fetched {sent / SIZE:.0%} of {SIZE >> 20} MiB")


def test_a_registry_sending_the_rest_in_pieces_is_asked_for_each_piece(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big: Path, tmp_path: Path, mloci_home: Path
) -> None:
    """A server may answer ``Range: bytes=N-`` with less than the rest (a 206 whose Content-Range
    ends early): the resumed pull asks for the next piece instead of calling the blob short."""
    digest = pushed(mloci, big, f"{registry.host}/ml/big")
    parent = tmp_path / "pulls"
    parent.mkdir()
    kept = received(killed_pull(proxy, digest, parent / "out", mloci_home, 1 / 3))
    pieces = FaultProxy(registry.port or 0)
    try:
        pieces.add(Fault("GET", MODEL_DIGEST, cap_range=16 << 20, times=100))
        result = mloci("pull", f"{pieces.host}/ml/big@{digest}", "-o", parent / "out", "--json")
    finally:
        pieces.close()
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["bytesResumed"] >= kept
    assert pieces.count("GET", MODEL_DIGEST) >= (SIZE - kept) // (16 << 20)
    assert (parent / "out" / "model.bin").read_bytes() == (big / "model.bin").read_bytes()


def test_a_damaged_partial_is_detected_and_the_blob_fetched_again(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big: Path, tmp_path: Path, mloci_home: Path
) -> None:
    digest = pushed(mloci, big, f"{registry.host}/ml/big")
    partials = killed_pull(proxy, digest, tmp_path / "out", mloci_home, 1 / 2)
    (data,) = (p for p in partials.iterdir() if not p.name.endswith(".json"))
    with data.open("r+b") as handle:  # a byte flipped on disk
        handle.seek(12345)
        flipped = bytes([handle.read(1)[0] ^ 0xFF])
        handle.seek(12345)
        handle.write(flipped)
    before = settled(registry)

    result = mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["bytesResumed"] == 0
    # The resumed attempt failed verification; the blob then came again whole.
    assert [status for status, _ in blob_gets(registry)[before:]] == [206, 200]
    assert (tmp_path / "out" / "model.bin").read_bytes() == (big / "model.bin").read_bytes()
    assert not partials.exists()


def test_a_ranged_pull_killed_midway_resumes_only_the_missing_ranges(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big: Path, tmp_path: Path, mloci_home: Path
) -> None:
    digest = pushed(mloci, big, f"{registry.host}/ml/big")
    partials = killed_pull(proxy, digest, tmp_path / "out", mloci_home, 1 / 2, "--connections", "4")
    kept = received(partials)
    before = settled(registry, 4)

    result = mloci(
        "pull", f"{registry.host}/ml/big@{digest}", "-o", tmp_path / "out", "--connections", "4", "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["bytesResumed"] >= kept
    assert sum(sent for _, sent in blob_gets(registry)[before:]) <= SIZE - kept
    assert (tmp_path / "out" / "model.bin").read_bytes() == (big / "model.bin").read_bytes()
    assert not partials.exists()


def test_cleanup_after_a_pull_leaves_what_mloci_did_not_write(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big: Path, tmp_path: Path, mloci_home: Path
) -> None:
    digest = pushed(mloci, big, f"{registry.host}/ml/big")
    partials = killed_pull(proxy, digest, tmp_path / "out", mloci_home, 0)
    (partials / "notes.txt").write_text("mine")
    result = mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in partials.iterdir()] == ["notes.txt"]


def upload_records(home: Path) -> list[dict[str, str]]:
    return [json.loads(p.read_text()) for p in (home / "uploads").glob("*.json")]


def test_a_push_killed_between_chunks_continues_its_upload_session(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big: Path, mloci_home: Path
) -> None:
    held = proxy.add(Fault("PATCH", r"/blobs/uploads/", hold_request=30, skip=5))
    child = spawn(["push", str(big), f"{proxy.host}/ml/big", "--chunk-size", str(CHUNK)], mloci_home)
    kill_when(child, lambda: held.hits > held.skip)
    (record,) = upload_records(mloci_home)
    assert set(record) == {"version", "registry", "repository", "subject", "location"}
    assert record["repository"] == "ml/big" and "@" not in record["location"].split("/")[2]
    assert (mloci_home / "uploads").stat().st_mode & 0o077 == 0
    sent_before = proxy.body_bytes.get("PATCH", 0)
    assert sent_before == 5 * CHUNK
    proxy.faults.clear()

    digest = pushed(mloci, big, f"{proxy.host}/ml/big")
    # The model went on from byte 5 x CHUNK; the small files were sent whole.
    resent = proxy.body_bytes["PATCH"] - sent_before
    assert SIZE - 5 * CHUNK <= resent < SIZE - 5 * CHUNK + (1 << 20)
    assert upload_records(mloci_home) == []
    out = Path(str(mloci_home)) / "check"
    assert mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", out).exit_code == 0
    assert (out / "model.bin").read_bytes() == (big / "model.bin").read_bytes()
    print(f"resumed at {5 * CHUNK >> 20} MiB: sent {resent >> 20} MiB of {SIZE >> 20} MiB again")


def test_a_push_killed_mid_patch_starts_over_cleanly(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big: Path, mloci_home: Path
) -> None:
    # distribution cancels a session whose PATCH was cut mid-body (its recorded offset no longer
    # matches what it stored): the next push is told so (404) and uploads from the start.
    child = spawn(["push", str(big), f"{proxy.host}/ml/big"], mloci_home)
    kill_when(child, lambda: proxy.body_bytes.get("PATCH", 0) >= 30 << 20, timeout=120)
    assert len(upload_records(mloci_home)) == 1
    digest = pushed(mloci, big, f"{proxy.host}/ml/big")
    assert upload_records(mloci_home) == []
    out = Path(str(mloci_home)) / "check"
    assert mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", out).exit_code == 0
    assert (out / "model.bin").read_bytes() == (big / "model.bin").read_bytes()


def test_a_pull_into_an_existing_empty_directory_resumes_there(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big: Path, tmp_path: Path, mloci_home: Path
) -> None:
    # Like a Kubernetes emptyDir volume: the target exists, so partials live in its .mloci/ directory,
    # which must not make the next pull call the directory "not empty".
    digest = pushed(mloci, big, f"{registry.host}/ml/big")
    proxy.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=0.04, times=10))
    mount = tmp_path / "mount"
    mount.mkdir()
    partials = mount / ".mloci" / "partial"
    child = spawn(["pull", f"{proxy.host}/ml/big@{digest}", "-o", str(mount)], mloci_home)
    kill_when(child, lambda: received(partials) >= SIZE // 4)
    result = mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", mount, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["bytesResumed"] >= SIZE // 4
    assert (mount / "model.bin").read_bytes() == (big / "model.bin").read_bytes()
    assert not (mount / ".mloci" / "partial").exists()


def test_a_recorded_session_holding_other_bytes_is_abandoned_for_a_fresh_upload(
    registry: Registry, tmp_path: Path
) -> None:
    from mloci.store.registry import RegistryStore
    from mloci.store.registry.sessions import UploadSessions
    from mloci.types.blob import Blob
    from mloci.types.manifest import Descriptor

    sessions = UploadSessions(tmp_path / "uploads")
    store = RegistryStore(registry.host, sessions=sessions, chunk_size=1 << 20)
    data = os.urandom(3 << 20)
    path = tmp_path / "blob"
    path.write_bytes(data)
    blob = Blob(Descriptor.of_bytes("application/octet-stream", data), path=path)
    # A session that received 1 MiB of something else, recorded as if for this blob.
    scope = "repository:ml/big:pull,push"
    started = store.transport.request("POST", "/v2/ml/big/blobs/uploads/", scope=scope, expect=(202,))
    started.release_conn()
    patched = store.transport.request(
        "PATCH",
        store.transport.url(started.headers["Location"]),
        scope=scope,
        headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{(1 << 20) - 1}"},
        body=os.urandom(1 << 20),
        expect=(202,),
    )
    patched.release_conn()
    digest = str(blob.descriptor.digest)
    sessions.save(registry.host, "ml/big", digest, store.transport.url(patched.headers["Location"]))

    assert store.push_blob("ml/big", blob) == "uploaded"
    assert store.has_blob("ml/big", blob.descriptor.digest)
    assert sessions.load(registry.host, "ml/big", digest) is None
    # It did resume first (GET of the recorded session), then started over.
    assert registry.requests_matching(r'"GET /v2/ml/big/blobs/uploads/') == 1
    assert registry.requests_matching(r'"POST /v2/ml/big/blobs/uploads/') == 2
    store.close()
