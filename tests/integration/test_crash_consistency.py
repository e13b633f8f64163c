"""Crash consistency: ``kill -9`` a push and a pull at random points, against a registry and the local store.

After every kill: ``mloci fsck`` finds the local store intact; a pull target holds the old
artifact or the new one, exactly as its ``.mloci/pull.json`` marker says (or a marker that
says the publish was cut short, which the next pull completes); and the next run succeeds
and sweeps what the killed one left. Bounded: about a minute in all.

Select with ``-m crash``; ``MLOCI_CRASH_POINTS`` (kills per case, default 20) and
``MLOCI_CRASH_SEED`` reproduce a run (the seed is in every failure message).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from faultproxy import Fault, FaultProxy
from helpers import Registry, Runner

pytestmark = pytest.mark.crash

POINTS = int(os.environ.get("MLOCI_CRASH_POINTS", "20"))
# Each push adds a version the next fsck hashes again: smaller files keep the test bounded.
PUSH_SIZE = 2 << 20
SEED = int(os.environ.get("MLOCI_CRASH_SEED", str(time.time_ns() % 1_000_000)))


def make_bundle(root: Path, version: str, rng: random.Random, size: int = 8 << 20) -> dict[str, bytes]:
    """A bundle of a few files (one large enough to take a while); returns its files."""
    files = {
        "model.onnx": rng.randbytes(size),
        "config.json": json.dumps({"v": version}).encode(),
        "docs/README.md": f"# {version}\n".encode(),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "manifest.json").write_text(json.dumps({"name": "crashy", "version": version}))
    return {**files, "manifest.json": version.encode()}


def kill_at_random(args: list[str], home: Path, delay: float, after: Callable[[], bool] | None = None) -> int:
    """Run ``python -m mloci ARGS`` and SIGKILL it ``delay`` seconds after it starts — or after ``after()``
    first holds, when given — unless it ended first; its exit code (-9 when killed)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "mloci", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MLOCI_HOME": str(home)},
    )
    while after is not None and child.poll() is None and not after():
        time.sleep(0.0005)
    try:
        return child.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        return child.wait()


def staging_window(args: list[str], home: Path, parent: Path) -> tuple[float, float]:
    """When a pull starts staging (after Python's start-up and the manifest) and when it ends."""
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "mloci", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MLOCI_HOME": str(home)},
    )
    staged = None
    while child.poll() is None:
        if staged is None and any(".mloci-" in p.name for p in parent.iterdir()):
            staged = time.monotonic() - started
        time.sleep(0.001)
    assert child.returncode == 0
    ended = time.monotonic() - started
    return (staged if staged is not None else ended * 0.8), ended


def staging(parent: Path, out: Path) -> bool:
    """Whether a pull's staging directory exists, beside or inside ``out``."""
    try:
        return any(".mloci-" in p.name for p in [*parent.iterdir(), *tree_names(out)])
    except FileNotFoundError:  # renamed into place meanwhile
        return True


def timed(args: list[str], home: Path) -> float:
    started = time.monotonic()
    assert kill_at_random(args, home, 120) == 0
    return time.monotonic() - started


def tree(root: Path) -> dict[str, bytes]:
    """The files a pull wrote, as its marker lists them."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def tree_names(root: Path) -> list[Path]:
    return list(root.iterdir()) if root.is_dir() else []


def published(root: Path) -> dict[str, bytes]:
    """What a pull published: its files (manifest.json reduced to its version), no marker or staging."""
    files = {
        name: data for name, data in tree(root).items() if not name.startswith((".mloci/", ".mloci-staging-"))
    }
    if "manifest.json" in files:
        files["manifest.json"] = json.loads(files["manifest.json"])["version"].encode()
    return files


def fsck_intact(mloci: Runner, context: str) -> None:
    result = mloci("fsck", "--json")
    assert result.exit_code == 0, f"{context}: {result.stdout} {result.stderr}"


def leftovers_of(home: Path, pid_dirs: list[Path]) -> list[str]:
    found = [p.name for p in (home / "tmp").iterdir()] if (home / "tmp").is_dir() else []
    for directory in pid_dirs:
        if directory.is_dir():
            found += [p.name for p in directory.iterdir() if ".mloci-" in p.name]
    return found


@pytest.mark.parametrize("where", ["registry", "local"])
def test_kill_9_pull_at_random_points(
    where: str, mloci: Runner, mloci_home: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(SEED)  # noqa: S311  (reproducible kill points, not secrets)
    repo = "crashy"
    if where == "registry":
        registry: Registry = request.getfixturevalue("registry")
        repo = f"{registry.host}/ml/crashy"
    # The local store copies at disk speed: a larger file gives the kills a window to land in.
    size = (8 << 20) if where == "registry" else (32 << 20)
    old = make_bundle(tmp_path / "v1", "1.0.0", rng, size)
    new = make_bundle(tmp_path / "v2", "2.0.0", rng, size)
    digests = {}
    for version, bundle in (("1.0.0", tmp_path / "v1"), ("2.0.0", tmp_path / "v2")):
        pushed = mloci("push", bundle, repo, "--json")
        assert pushed.exit_code == 0, pushed.stderr
        digests[version] = json.loads(pushed.stdout)["digest"]
    parent = tmp_path / "pulls"
    parent.mkdir()
    out = parent / "out"
    pristine = tmp_path / "pristine-v1"
    assert mloci("pull", f"{repo}@{digests['1.0.0']}", "-o", pristine).exit_code == 0
    source = repo
    if where == "registry":
        # Through a proxy that paces blob bodies (0.05 s/MiB), so the download is long enough to be hit.
        proxy = FaultProxy(registry.port or 0)
        request.addfinalizer(proxy.close)
        proxy.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=0.05, times=10_000))
        source = f"{proxy.host}/ml/crashy"
    args = ["pull", f"{source}@{digests['2.0.0']}", "-o", str(out)]
    # Kills land from just before staging starts to just after the pull ends: download and publish.
    staged, ended = staging_window(args, mloci_home, parent)
    shutil.rmtree(out)
    window, span = max(ended - staged, 0.05) * 1.2, ended * 1.1
    killed: Counter[bool] = Counter()
    outcomes: Counter[str] = Counter()
    for point in range(POINTS):
        context = f"seed {SEED}, {where} pull, point {point}"
        shutil.rmtree(out, ignore_errors=True)
        update = point % 2 == 0  # half over an older pull, half into a new directory
        if update:
            shutil.copytree(pristine, out, symlinks=True)  # what pulling 1.0.0 wrote
        if rng.random() < 0.7:  # from the moment staging appears to the end: download and publish
            delay = window * rng.random() ** 2  # biased early: the publishing renames come soon after staging
            code = kill_at_random(args, mloci_home, delay, after=lambda: staging(parent, out))
        else:  # anywhere
            code = kill_at_random(args, mloci_home, rng.uniform(0, span))
        killed[code == -signal.SIGKILL] += 1
        if out.exists():
            marker = json.loads((out / ".mloci" / "pull.json").read_text())
            state = published(out)
            if marker.get("digest") == digests["2.0.0"]:
                assert state == new, context
                outcomes["new"] += 1
            elif marker.get("digest") == digests["1.0.0"]:
                assert state == old, context
                outcomes["old"] += 1
            else:
                # Killed between renames: the marker says so and owns both generations' files.
                assert marker.get("incomplete") is True, context
                assert set(state) <= set(marker["files"]), context
                outcomes["incomplete"] += 1
        else:
            assert not update, context
            outcomes["absent"] += 1
        outcomes["staging left"] += any(".mloci-" in p.name for p in [*parent.iterdir(), *tree_names(out)])
        fsck_intact(mloci, context)
        again = mloci(*args)
        assert again.exit_code == 0, f"{context}: {again.stderr}"
        assert published(out) == new, context
        assert [p.name for p in parent.iterdir()] == ["out"], context
        assert not any(p.name.startswith(".mloci-staging-") for p in out.iterdir()), context
    print(f"seed {SEED}, {where} pull: killed {killed[True]} of {POINTS} mid-run; {dict(outcomes)}")
    assert killed[True] >= max(2, POINTS // 5), "too few kills landed mid-run to mean anything"


@pytest.mark.parametrize("where", ["registry", "local"])
def test_kill_9_push_at_random_points(
    where: str, mloci: Runner, mloci_home: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(SEED + 1)  # noqa: S311
    repo = "crashy"
    if where == "registry":
        registry: Registry = request.getfixturevalue("registry")
        repo = f"{registry.host}/ml/crashy"
    bundle = tmp_path / "bundle"
    make_bundle(bundle, "0.0.1", rng, PUSH_SIZE)
    start, span = timed(["--version"], mloci_home) * 0.8, timed(["push", str(bundle), repo], mloci_home) * 1.2
    killed: Counter[bool] = Counter()
    for point in range(POINTS):
        context = f"seed {SEED}, {where} push, point {point}"
        version = f"1.0.{point}"
        files = make_bundle(bundle, version, rng, PUSH_SIZE)
        killed[kill_at_random(["push", str(bundle), repo], mloci_home, rng.uniform(start, span)) == -9] += 1
        fsck_intact(mloci, context)
        again = mloci("push", bundle, repo, "--json")
        assert again.exit_code == 0, f"{context}: {again.stderr}"
        digest = json.loads(again.stdout)["digest"]
        out = tmp_path / f"out-{point}"
        pulled = mloci("pull", f"{repo}@{digest}", "-o", out)
        assert pulled.exit_code == 0, f"{context}: {pulled.stderr}"
        assert published(out) == files, context
        assert leftovers_of(mloci_home, []) == [], context
    fsck_intact(mloci, f"seed {SEED}, {where} push, end")
    print(f"seed {SEED}, {where} push: killed {killed[True]} of {POINTS} mid-run")
    assert killed[True] >= max(2, POINTS // 5), "too few kills landed mid-run to mean anything"
