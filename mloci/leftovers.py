"""Temporary files and directories that name their owner, and sweeping those whose owner died.

Ctrl-C and SIGTERM clean up as they unwind; SIGKILL (an OOM kill, a pod past its grace
period, a power cut) leaves staging behind. So every temporary entry mloci creates is named
``<prefix><pid>-<random>`` and its owner holds an exclusive ``flock`` on it for as long as
it lives. An entry is swept only when all of these hold:

* its name has one of mloci's prefixes and a PID (nothing mloci did not create is touched);
* no process with that PID runs here;
* its lock can be taken: the owner is gone even if it ran in another PID namespace (a
  container sharing the volume) — the kernel drops a dead process's locks.

Where locks are not supported (some network filesystems) nothing is ever swept.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
from pathlib import Path

_PID = re.compile(r"(\d{1,10})-")
_LEGACY = re.compile(r"[a-z0-9_]{8}")  # what tempfile adds after a prefix


def owned_prefix(prefix: str) -> str:
    """``prefix`` followed by this process's PID, for ``tempfile.mkstemp``/``mkdtemp``."""
    return f"{prefix}{os.getpid()}-"


def hold(fd: int) -> None:
    """Mark the entry open on ``fd`` as in use for as long as ``fd`` stays open (best effort)."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def hold_path(path: Path) -> int | None:
    """Open ``path`` (a file or directory) and :func:`hold` it; the caller closes the descriptor."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    hold(fd)
    return fd


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as exc:
        return exc.errno != errno.ESRCH  # EPERM: it runs, as another user
    return True


def owner_pid(name: str, prefix: str) -> int | None:
    """The PID recorded in ``name`` after ``prefix``; None when the name is not one of ours."""
    if not name.startswith(prefix):
        return None
    found = _PID.match(name, len(prefix))
    return int(found.group(1)) if found else None


def sweep(directory: Path, prefixes: tuple[str, ...], *, legacy_before: float | None = None) -> list[Path]:
    """Remove the entries of ``directory`` named with one of ``prefixes`` whose owner is gone.

    ``legacy_before``: also remove entries with such a prefix but no PID (written by mloci
    versions before owners were recorded) when last modified before this time and unlocked.
    Returns what was removed. Never raises for an entry it cannot inspect: it is left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        prefix = next((p for p in prefixes if entry.name.startswith(p)), None)
        if prefix is None:
            continue
        path = Path(entry.path)
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
            continue  # a link or anything else with our name: not ours
        pid = owner_pid(entry.name, prefix)
        if pid is None:
            legacy = _LEGACY.fullmatch(entry.name, len(prefix)) is not None
            if not legacy or legacy_before is None or info.st_mtime >= legacy_before:
                continue
        elif _running(pid):
            continue
        if _remove_if_unlocked(path, directory=stat.S_ISDIR(info.st_mode)):
            removed.append(path)
    return removed


def _remove_if_unlocked(path: Path, *, directory: bool) -> bool:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held by a live owner, or locks unsupported: leave it
        if directory:
            shutil.rmtree(path, ignore_errors=True)
            return not path.exists()
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)
