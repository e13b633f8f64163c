"""Owner-named temporary entries and the sweep rule; SIGTERM and deferred sections (no subprocesses)."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

import pytest

from mloci import leftovers
from mloci.interrupts import Terminated, deferred, handle_signals


def impossible_pid() -> int:
    """A PID above the kernel's maximum: certainly not running."""
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def test_only_dead_owners_unlocked_entries_with_our_names_are_swept(tmp_path: Path) -> None:
    dead = impossible_pid()
    entries = {
        "dead-dir": tmp_path / f".out.mloci-{dead}-abcd1234",
        "dead-file": tmp_path / f".out.mloci-{dead}-efgh5678",
        "mine": tmp_path / f".out.mloci-{os.getpid()}-abcd1234",
        "locked": tmp_path / f".out.mloci-{dead}-locked12",
        "no-pid": tmp_path / ".out.mloci-backup",
        "other": tmp_path / "out",
    }
    for name, path in entries.items():
        if name.endswith("file"):
            path.write_text("x")
        else:
            path.mkdir()
            (path / "f").write_text("x")
    link = tmp_path / f".out.mloci-{dead}-link1234"
    link.symlink_to(entries["other"])
    lock_holder = os.open(entries["locked"], os.O_RDONLY)  # as its owner in another PID namespace would
    try:
        fcntl.flock(lock_holder, fcntl.LOCK_EX)
        removed = leftovers.sweep(tmp_path, (".out.mloci-",))
    finally:
        os.close(lock_holder)
    assert sorted(removed) == sorted([entries["dead-dir"], entries["dead-file"]])
    assert all(entries[n].exists() for n in ("mine", "locked", "no-pid", "other"))
    assert link.is_symlink() and (entries["other"] / "f").exists()


def test_legacy_names_go_only_when_old_enough(tmp_path: Path) -> None:
    legacy = tmp_path / "ingest-ab12cd34"
    legacy.write_text("x")
    assert leftovers.sweep(tmp_path, ("ingest-",)) == []
    assert leftovers.sweep(tmp_path, ("ingest-",), legacy_before=time.time() - 60) == []
    old = time.time() - 3600
    os.utime(legacy, (old, old))
    assert leftovers.sweep(tmp_path, ("ingest-",), legacy_before=time.time() - 60) == [legacy]


def test_owned_prefix_round_trips() -> None:
    name = leftovers.owned_prefix(".x.mloci-") + "abcd1234"
    assert leftovers.owner_pid(name, ".x.mloci-") == os.getpid()
    assert leftovers.owner_pid(".x.mloci-backup", ".x.mloci-") is None


def test_sigterm_raises_terminated_and_waits_for_a_deferred_section() -> None:
    steps: list[str] = []
    with handle_signals():
        with pytest.raises(Terminated), deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run by now; the section still finishes
            steps.append("finished")
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert steps == ["finished"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
