"""Where a build runs: the CI system (GitHub Actions, GitLab CI, Buildkite, Jenkins) and the git work tree.

One place answers "which commit, which repository, which CI run, who" for every writer of
metadata: bundles record the commit (``git_state``), provenance names the source and builder
(``detect_source``, ``detect_builder``), promotion records name the actor and run (``actor``,
``ci_run_url``). Nothing here raises: what cannot be found is None.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

BUILDER_ENV: Final = "MLOCI_BUILDER_ID"
LOCAL_BUILDER: Final = "https://github.com/mloci/mloci/blob/main/docs/trust.md#builder-local-v1"


# -- git -----------------------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str | None:
    """``git -C cwd ARGS`` stdout (stripped), or None without git, outside a work tree or on failure."""
    exe = shutil.which("git")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, "-C", str(cwd), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()


@dataclass(frozen=True)
class GitState:
    sha: str
    dirty: bool


def git_state(path: Path) -> GitState | None:
    """HEAD and dirtiness of the work tree holding ``path``; None outside a work tree or without git."""
    sha = git(path, "rev-parse", "--verify", "--quiet", "HEAD")
    if not sha:
        return None
    status = git(path, "status", "--porcelain", "--untracked-files=normal")
    return GitState(sha=sha, dirty=bool(status))


# -- source, builder, run, actor -----------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The source the artifact was built from, as far as the manifest, CI and git tell."""

    repository: str | None = None
    ref: str | None = None
    commit: str | None = None


def redact_url(url: str) -> str:
    """``url`` without user or password (a token in a git remote URL must not be published)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.netloc or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def detect_source(commit: str | None, cwd: Path | None = None) -> Source:
    """Repository URL, ref and commit: the manifest's commit first, then CI variables, then git in ``cwd``.

    The work tree's remote and branch are used only when its HEAD is the commit the model
    records (or the model records none): a checkout of something else says nothing about it.
    """
    env = os.environ
    repository: str | None = None
    ref: str | None = None
    if env.get("GITHUB_REPOSITORY"):
        repository = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}"
        ref = env.get("GITHUB_REF") or None
        commit = commit or env.get("GITHUB_SHA") or None
    elif env.get("CI_PROJECT_URL"):
        repository = env["CI_PROJECT_URL"]
        ref = env.get("CI_COMMIT_REF_NAME") or None
        commit = commit or env.get("CI_COMMIT_SHA") or None
    work = cwd or Path.cwd()
    head = git(work, "rev-parse", "--verify", "--quiet", "HEAD") or None
    if head and (commit is None or head == commit):
        commit = head
        repository = repository or git(work, "remote", "get-url", "origin") or None
        ref = ref or git(work, "symbolic-ref", "--quiet", "HEAD") or None
    return Source(repository=redact_url(repository) if repository else None, ref=ref, commit=commit)


def detect_builder() -> str:
    """``builder.id``: $MLOCI_BUILDER_ID, else the CI platform's runner, else mloci on a workstation."""
    env = os.environ
    if env.get(BUILDER_ENV):
        return env[BUILDER_ENV]
    if env.get("GITHUB_ACTIONS") == "true":
        hosted = env.get("RUNNER_ENVIRONMENT") == "github-hosted"
        return f"https://github.com/actions/runner/{'github-hosted' if hosted else 'self-hosted'}"
    if env.get("GITLAB_CI") and env.get("CI_SERVER_URL") and env.get("CI_RUNNER_ID"):
        return f"{env['CI_SERVER_URL']}/{env.get('CI_PROJECT_PATH', '')}/-/runners/{env['CI_RUNNER_ID']}"
    return LOCAL_BUILDER


def ci_run_url() -> str | None:
    """The URL of the CI run this process belongs to, when a CI system says so."""
    env = os.environ
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    for name in ("CI_JOB_URL", "BUILDKITE_BUILD_URL", "BUILD_URL"):
        if env.get(name):
            return env[name]
    return None


def actor() -> str:
    """Who is acting: $MLOCI_ACTOR, else the CI system's user, else user@host."""
    for name in (
        "MLOCI_ACTOR",
        "GITHUB_ACTOR",
        "GITLAB_USER_LOGIN",
        "BUILDKITE_BUILD_CREATOR",
        "BUILD_USER_ID",
    ):
        if os.environ.get(name):
            return os.environ[name]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
