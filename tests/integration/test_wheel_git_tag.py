"""mloci wheel push --git-tag: a monorepo's package versions tagged <project>-v<version> when published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import Registry, Runner, git
from pydists import write_wheel

from mloci.ops.wheel import read_release
from mloci.store import RegistryStore
from mloci.types import Reference


def released(registry: Registry, project: str, version: str) -> bool:
    store = RegistryStore(registry.host)
    try:
        return read_release(store, Reference(registry.host, f"py/{project}"), version) is not None
    finally:
        store.close()


def test_push_tags_head_and_refuses_a_dirty_tree_or_a_moved_tag(
    registry: Registry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "monorepo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README").write_text("packages\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    head = git(repo, "rev-parse", "HEAD")
    monkeypatch.chdir(repo)
    dist = tmp_path / "dist"  # outside the work tree: building does not dirty it
    wheel = write_wheel(dist, "Feature_Kit", "0.1.3")
    namespace = f"{registry.host}/py"

    (repo / "README").write_text("changed\n")
    dirty = mloci("wheel", "push", wheel, namespace, "--git-tag")
    assert dirty.exit_code == 2 and "uncommitted changes" in dirty.stderr and "--allow-dirty" in dirty.stderr
    assert not released(registry, "feature-kit", "0.1.3")  # refused before anything was pushed
    git(repo, "checkout", "--", "README")

    done = mloci("wheel", "push", wheel, namespace, "--git-tag", "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["gitTags"] == ["feature-kit-v0.1.3"]
    assert git(repo, "rev-parse", "feature-kit-v0.1.3^{commit}") == head
    again = mloci("wheel", "push", wheel, namespace, "--git-tag")  # same files, same commit: a no-op
    assert again.exit_code == 0, again.stderr

    (repo / "more").write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "second")
    other = write_wheel(tmp_path / "other", "Feature_Kit", "0.1.3", tag="py311-none-any")
    moved = mloci("wheel", "push", other, namespace, "--git-tag")
    assert moved.exit_code == 7 and "already names commit" in moved.stderr
    assert git(repo, "rev-parse", "feature-kit-v0.1.3^{commit}") == head

    (repo / "more").write_text("y\n")
    newer = write_wheel(tmp_path / "newer", "Feature_Kit", "0.2.0")
    allowed = mloci("wheel", "push", newer, namespace, "--git-tag", "--allow-dirty")
    assert allowed.exit_code == 0, allowed.stderr
    assert git(repo, "rev-parse", "feature-kit-v0.2.0^{commit}") == git(repo, "rev-parse", "HEAD")


def test_git_tag_outside_a_work_tree_is_a_usage_error(
    registry: Registry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    wheel = write_wheel(tmp_path / "dist")
    done = mloci("wheel", "push", wheel, f"{registry.host}/py", "--git-tag")
    assert done.exit_code == 2 and "not in a git work tree" in done.stderr
    assert not released(registry, "featurekit", "0.1.3")
