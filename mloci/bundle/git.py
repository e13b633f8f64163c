"""What git knows about a bundle: the commit it was built from, and whether the tree was dirty."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GitState:
    sha: str
    dirty: bool


def git_state(path: Path) -> GitState | None:
    """HEAD and dirtiness of the work tree holding ``path``; None outside a work tree or without git."""
    git = shutil.which("git")
    if git is None:
        return None

    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(
                [git, "-C", str(path), *args], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    sha = run("rev-parse", "--verify", "--quiet", "HEAD")
    if not sha:
        return None
    status = run("status", "--porcelain", "--untracked-files=normal")
    return GitState(sha=sha, dirty=bool(status))
