"""Interruptions: SIGTERM is handled like Ctrl-C (exit 143, nothing left), and what SIGKILL leaves is swept.

Every test sends real signals to a real ``python -m mloci`` process.
"""

from __future__ import annotations

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
from pydists import write_wheel


@pytest.fixture
def big_bundle(tmp_path: Path) -> Path:
    return random_bundle(tmp_path, "big", "model.onnx", 6 << 20)


def spawn(args: list[str], home: Path) -> subprocess.Popen[str]:
    """``python -m mloci ARGS`` as its own process, as a user or a pod would run it."""
    return subprocess.Popen(
        [sys.executable, "-m", "mloci", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MLOCI_HOME": str(home)},
    )


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def pushed(mloci: Runner, bundle: Path, ref: str) -> str:
    result = mloci("push", bundle, ref, "--json")
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["digest"])


def dead_pid() -> int:
    """The PID of a real process that has exited (and is reaped), so nothing runs under it."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def locker(path: Path) -> subprocess.Popen[str]:
    """A live process holding the flock an owner of ``path`` holds (as a pull in another container would)."""
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


def test_sigterm_mid_download_into_a_new_directory_leaves_nothing(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big_bundle: Path, tmp_path: Path, mloci_home: Path
) -> None:
    digest = pushed(mloci, big_bundle, f"{registry.host}/ml/big")
    proxy.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=2.0, times=10))
    parent = tmp_path / "pulls"
    parent.mkdir()
    child = spawn(["pull", f"{proxy.host}/ml/big@{digest}", "-o", str(parent / "out")], mloci_home)
    wait_for(lambda: any(p.name.startswith(".out.mloci-") for p in parent.iterdir()), what="staging")
    time.sleep(0.3)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 143, err  # 128 + SIGTERM
    assert "terminated" in err and "Traceback" not in err
    # Nothing at the target; only the bytes received, kept for the next pull to resume (then removed).
    assert [p.name for p in parent.iterdir()] in ([], [".mloci-partial-out"])
    for kept in (parent / ".mloci-partial-out").glob("*"):
        assert re.fullmatch(r"sha256-[0-9a-f]{64}(\.json)?", kept.name), kept
    again = mloci("pull", f"{proxy.host}/ml/big@{digest}", "-o", parent / "out")
    assert again.exit_code == 0, again.stderr
    assert [p.name for p in parent.iterdir()] == ["out"]


def test_sigterm_mid_download_into_an_existing_directory_leaves_it_as_it_was(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big_bundle: Path, tmp_path: Path, mloci_home: Path
) -> None:
    first = pushed(mloci, big_bundle, f"{registry.host}/ml/big")
    out = tmp_path / "out"
    assert mloci("pull", f"{registry.host}/ml/big@{first}", "-o", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    marker = (out / ".mloci" / "pull.json").read_text()
    (big_bundle / "model.onnx").write_bytes(os.urandom(6 << 20))
    manifest = json.loads((big_bundle / "manifest.json").read_text())
    (big_bundle / "manifest.json").write_text(json.dumps({**manifest, "version": "1.0.1"}))
    second = pushed(mloci, big_bundle, f"{registry.host}/ml/big")
    proxy.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=2.0, times=10))
    child = spawn(["pull", f"{proxy.host}/ml/big@{second}", "-o", str(out)], mloci_home)
    wait_for(lambda: any(p.name.startswith(".mloci-staging-") for p in out.iterdir()), what="staging")
    time.sleep(0.3)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 143, err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == sorted([*before, ".mloci"])
    assert (out / ".mloci" / "pull.json").read_text() == marker


def test_sigterm_mid_upload_cancels_the_session(
    registry: Registry, proxy: FaultProxy, big_bundle: Path, mloci_home: Path
) -> None:
    child = spawn(["push", str(big_bundle), f"{proxy.host}/ml/big", "--chunk-size", "1048576"], mloci_home)
    wait_for(lambda: proxy.count("PATCH", r"/blobs/uploads/") >= 2, what="the upload")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 143, err
    assert proxy.count("DELETE", r"/blobs/uploads/") >= 1


def test_sigterm_mid_local_push_leaves_no_temporary_file(tmp_path: Path, mloci_home: Path) -> None:
    bundle = tmp_path / "big"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"name": "big", "version": "1.0.0"}')
    with (bundle / "model.onnx").open("wb") as handle:  # sparse: instant to make, slow enough to hash
        handle.truncate(256 << 20)
    tmp = mloci_home / "tmp"
    child = spawn(["push", str(bundle)], mloci_home)
    wait_for(lambda: tmp.is_dir() and any(p.name.startswith("ingest-") for p in tmp.iterdir()), what="ingest")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert "Traceback" not in err
    assert list(tmp.iterdir()) == []


def test_the_next_pull_sweeps_staging_a_sigkill_left(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big_bundle: Path, tmp_path: Path, mloci_home: Path
) -> None:
    digest = pushed(mloci, big_bundle, f"{registry.host}/ml/big")
    proxy.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=2.0, times=10))
    parent = tmp_path / "pulls"
    parent.mkdir()
    out = parent / "out"
    child = spawn(["pull", f"{proxy.host}/ml/big@{digest}", "-o", str(out)], mloci_home)
    wait_for(lambda: any(p.name.startswith(".out.mloci-") for p in parent.iterdir()), what="staging")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    # What SIGKILL leaves: the staging, and (kept for the next pull to resume) the partial download.
    left = [p.name for p in parent.iterdir() if p.name != ".mloci-partial-out"]
    assert len(left) == 1 and left[0].startswith(f".out.mloci-{child.pid}-")
    result = mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in parent.iterdir()] == ["out"]
    # Inside an existing target too.
    proxy.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=2.0, times=10))
    (out / ".mloci" / "pull.json").unlink()
    child = spawn(["pull", f"{proxy.host}/ml/big@{digest}", "-o", str(out), "--force"], mloci_home)
    wait_for(lambda: any(p.name.startswith(".mloci-staging-") for p in out.iterdir()), what="staging")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert any(p.name.startswith(f".mloci-staging-{child.pid}-") for p in out.iterdir())
    assert mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", out, "--force").exit_code == 0
    assert not any(p.name.startswith(".mloci-staging-") for p in out.iterdir())


def test_a_live_pulls_staging_and_foreign_names_are_never_swept(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    digest = pushed(mloci, bundle, f"{registry.host}/ml/churn")
    parent = tmp_path / "pulls"
    parent.mkdir()
    live = parent / f".out.mloci-{os.getppid()}-abcd1234"  # a running process's PID
    namespaced = parent / f".out.mloci-{dead_pid()}-efgh5678"  # PID unknown here, but its lock is held
    user_dir = parent / ".out.mloci-backup"  # not a name mloci makes
    legacy_recent = parent / ".out.mloci-ab12cd34"  # an older mloci's, too recent to be sure
    for path in (live, namespaced, user_dir, legacy_recent):
        path.mkdir()
        (path / "model.onnx").write_text("x")
    holder = locker(namespaced)
    try:
        result = mloci("pull", f"{registry.host}/ml/churn@{digest}", "-o", parent / "out")
        assert result.exit_code == 0, result.stderr
        assert all(p.is_dir() for p in (live, namespaced, user_dir, legacy_recent))
    finally:
        holder.kill()
        holder.communicate()
    dead = parent / f".out.mloci-{dead_pid()}-ijkl9012"
    dead.mkdir()
    assert mloci("pull", f"{registry.host}/ml/churn@{digest}", "-o", parent / "out").exit_code == 0
    assert not dead.exists() and not namespaced.exists()  # owners gone: swept
    assert live.is_dir() and user_dir.is_dir() and legacy_recent.is_dir()


def _leftovers(tmp: Path) -> dict[str, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    files = {
        "dead": tmp / f"ingest-{dead_pid()}-abcd1234",
        "dead-blob": tmp / f"blob-{dead_pid()}-abcd1234",
        "live": tmp / f"ingest-{os.getppid()}-abcd1234",
        "legacy": tmp / "ingest-ab12cd34",
        "foreign": tmp / "notes.txt",
        "image-layer": tmp / "image-build" / f"layer-{dead_pid()}-abcd1234",
    }
    files["image-layer"].parent.mkdir()
    for path in files.values():
        path.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(files["legacy"], (old, old))
    return files


def test_the_next_local_push_sweeps_what_a_killed_push_left(
    mloci: Runner, bundle: Path, mloci_home: Path
) -> None:
    files = _leftovers(mloci_home / "tmp")
    assert mloci("push", bundle).exit_code == 0
    assert not files["dead"].exists() and not files["dead-blob"].exists()
    assert files["live"].exists() and files["foreign"].exists()
    assert files["legacy"].exists()  # an older version's: only gc, with its grace period, removes those


def test_gc_sweeps_the_local_stores_leftovers(mloci: Runner, bundle: Path, mloci_home: Path) -> None:
    assert mloci("push", bundle).exit_code == 0
    files = _leftovers(mloci_home / "tmp")
    result = mloci("gc", "churn-model", "--keep-last", "5", "--grace-seconds", "0", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["leftoversRemoved"] == 4
    assert not files["dead"].exists() and not files["dead-blob"].exists() and not files["legacy"].exists()
    assert not files["image-layer"].exists()
    assert files["live"].exists() and files["foreign"].exists()


def test_a_sigkilled_local_push_is_swept_by_gc(tmp_path: Path, mloci: Runner, mloci_home: Path) -> None:
    tmp = mloci_home / "tmp"
    for attempt in range(3):  # under load the push may finish before the kill lands: try a new bundle
        bundle = tmp_path / f"big-{attempt}"
        bundle.mkdir()
        (bundle / "manifest.json").write_text('{"name": "big", "version": "1.0.0"}')
        with (bundle / "model.onnx").open("wb") as handle:
            handle.truncate(256 << 20)
        (bundle / "small.txt").write_text("x")
        child = spawn(["push", str(bundle)], mloci_home)
        wait_for(
            lambda c=child: (
                c.poll() is not None
                or (tmp.is_dir() and any(p.name.startswith(f"ingest-{c.pid}-") for p in tmp.iterdir()))
            ),
            what="ingest",
        )
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        if any(p.name.startswith(f"ingest-{child.pid}-") for p in tmp.iterdir()):
            break
    assert any(p.name.startswith(f"ingest-{child.pid}-") for p in tmp.iterdir())
    (bundle / "model.onnx").unlink()
    (bundle / "model.onnx").write_bytes(b"small now")
    assert mloci("push", bundle).exit_code == 0
    assert mloci("gc", "big", "--keep-last", "1", "--grace-seconds", "0").exit_code == 0
    assert list(tmp.iterdir()) == []


def test_a_full_disk_during_a_local_push_leaves_the_store_intact(
    mloci: Runner, tmp_path: Path, mloci_home: Path
) -> None:
    """RLIMIT_FSIZE makes writes past 1 MiB fail with EFBIG, the way a full disk fails with ENOSPC."""
    bundle = random_bundle(tmp_path, "big", "model.onnx", 4 << 20)
    assert mloci("push", random_bundle(tmp_path, "small", "model.onnx", 1000)).exit_code == 0
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "from mloci.cli import main\n"
        f"sys.exit(main(['push', {str(bundle)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "MLOCI_HOME": str(mloci_home)},
    )
    assert done.returncode == 1, done.stderr
    assert "File too large" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert list((mloci_home / "tmp").iterdir()) == []
    assert mloci("fsck").exit_code == 0
    assert mloci("push", bundle).exit_code == 0


def test_a_registry_restart_mid_pull(
    mloci: Runner, registry: Registry, proxy: FaultProxy, big_bundle: Path, tmp_path: Path, mloci_home: Path
) -> None:
    digest = pushed(mloci, big_bundle, f"{registry.host}/ml/big")
    proxy.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=1.0, times=2))
    parent = tmp_path / "pulls"
    parent.mkdir()
    out = parent / "out"
    child = spawn(["pull", f"{proxy.host}/ml/big@{digest}", "-o", str(out)], mloci_home)
    wait_for(lambda: any(p.name.startswith(".out.mloci-") for p in parent.iterdir()), what="staging")
    time.sleep(0.5)
    port = registry.port
    registry.stop()
    time.sleep(0.5)
    registry.start(port=port)
    _, err = child.communicate(timeout=120)
    assert "Traceback" not in err
    if child.returncode == 0:  # resumed once the registry was back
        assert (out / "model.onnx").read_bytes() == (big_bundle / "model.onnx").read_bytes()
    else:
        assert child.returncode == 8, err
        # No target, no staging; what arrived is kept for the next pull to resume.
        assert [p.name for p in parent.iterdir()] in ([], [".mloci-partial-out"])
    again = mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", out)
    assert again.exit_code == 0, again.stderr
    assert (out / "model.onnx").read_bytes() == (big_bundle / "model.onnx").read_bytes()
    assert [p.name for p in parent.iterdir()] == ["out"]


def test_the_next_wheel_pull_sweeps_partial_files_a_sigkill_left(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    wheel = write_wheel(tmp_path / "dist")
    pushed = mloci("wheel", "push", wheel, f"{registry.host}/py")
    assert pushed.exit_code == 0, pushed.stderr
    out = tmp_path / "wheelhouse"
    out.mkdir()
    dead = out / f".{wheel.name}.mloci-{dead_pid()}-abcd1234.part"
    live = out / f".{wheel.name}.mloci-{os.getppid()}-abcd1234.part"
    other = out / f".{wheel.name}.keep.part"
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    result = mloci("wheel", "pull", f"{registry.host}/py/featurekit==0.1.3", "-d", out)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([wheel.name, live.name, other.name])
