"""Tagging a monorepo's package versions as part of publishing: ``<project>-v<version>`` at HEAD.

:func:`plan_tags` checks everything before a push (a git work tree, a clean tree unless allowed,
no tag of that name on another commit); :func:`create_tags` runs after the push succeeded. A tag
that already names HEAD is kept as it is, so publishing again is a no-op.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mloci.errors import ConflictError, MlociError, UsageError
from mloci.python.filenames import normalize_name, parse_version


@dataclass(frozen=True)
class TagPlan:
    repository: Path
    head: str
    tags: tuple[str, ...]  # to create
    existing: tuple[str, ...]  # already at HEAD


def tag_name(project: str, version: str) -> str:
    return f"{normalize_name(project)}-v{parse_version(version)}"


def _git(repository: Path, *args: str) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise UsageError("--git-tag needs git on PATH")
    try:
        return subprocess.run(
            [git, "-C", str(repository), *args], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise MlociError(f"git {args[0]} failed: {exc}") from None


def plan_tags(repository: Path, releases: Iterable[tuple[str, str]], *, allow_dirty: bool = False) -> TagPlan:
    """Check that tags ``<project>-v<version>`` can be created at HEAD of the work tree at ``repository``."""
    head = _git(repository, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if head.returncode != 0 or not head.stdout.strip():
        raise UsageError(
            f"--git-tag: {repository} is not in a git work tree with a commit",
            hint="run the push from the repository the packages are built from",
        )
    sha = head.stdout.strip()
    if not allow_dirty:
        status = _git(repository, "status", "--porcelain", "--untracked-files=normal")
        if status.returncode != 0 or status.stdout.strip():
            raise UsageError(
                "--git-tag: the work tree has uncommitted changes, so HEAD is not what was built",
                hint="commit or stash them, or pass --allow-dirty",
            )
    create: list[str] = []
    existing: list[str] = []
    for name in sorted({tag_name(project, version) for project, version in releases}):
        if _git(repository, "check-ref-format", f"refs/tags/{name}").returncode != 0:
            raise UsageError(f"--git-tag: {name!r} is not a valid git tag name")
        found = _git(repository, "rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}")
        if found.returncode == 0 and found.stdout.strip():
            if found.stdout.strip() != sha:
                raise ConflictError(
                    f"--git-tag: tag {name} already names commit {found.stdout.strip()[:12]}, not HEAD {sha[:12]}",
                    hint="versions are immutable: bump the version",
                )
            existing.append(name)
        else:
            create.append(name)
    return TagPlan(repository, sha, tuple(create), tuple(existing))


def create_tags(plan: TagPlan) -> tuple[str, ...]:
    """Create the planned tags at the planned commit; returns their names."""
    for name in plan.tags:
        done = _git(plan.repository, "tag", name, plan.head)
        if done.returncode != 0:
            raise MlociError(
                f"the push succeeded, but git could not create tag {name}: {done.stderr.strip()}",
                hint=f"create it yourself: git tag {name} {plan.head[:12]}",
            )
    return plan.tags
