"""PEP 700 for registry files: ``upload-time`` from each file layer, ``versions``, yank reasons.

uv's ``--exclude-newer`` is the real client that reads ``upload-time``: it must pick the release
published before the cutoff.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import urllib3
from helpers import Registry, Runner
from pydists import running_index, write_wheel
from test_git_state import git
from test_index import JSON_ACCEPT, fresh_venv, imported, run, tool_env

from mloci.ops.wheel import push_distributions, read_release
from mloci.pyindex.app import IndexConfig, create_app
from mloci.store import RegistryStore
from mloci.types import Reference
from mloci.types import annotations as ann


@pytest.fixture
def index(registry: Registry) -> Iterator[str]:
    with running_index(create_app(IndexConfig(registry=registry.host, namespace="py"))) as server:
        yield server.simple


def page(index: str, project: str) -> dict[str, object]:
    pool = urllib3.PoolManager(retries=False, timeout=30.0)
    try:
        response = pool.request("GET", f"{index}{project}/", headers={"Accept": JSON_ACCEPT})
    finally:
        pool.clear()
    assert response.status == 200, response.data
    document: dict[str, object] = json.loads(response.data)
    return document


def upload_times(document: dict[str, object]) -> dict[str, str | None]:
    files = document["files"]
    assert isinstance(files, list)
    return {entry["filename"]: entry.get("upload-time") for entry in files}


def release_digest(registry: Registry, repository: str, version: str) -> str:
    store = RegistryStore(registry.host)
    try:
        release = read_release(store, Reference(registry.host, repository), version)
    finally:
        store.close()
    assert release is not None
    return str(release.digest)


def test_source_date_epoch_sets_upload_time_and_keeps_the_release_digest_reproducible(
    registry: Registry, index: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no git work tree around
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1577836800")  # 2020-01-01
    old = write_wheel(tmp_path / "a", version="0.1.3")
    push_distributions([old], f"{registry.host}/py")
    time.sleep(1.1)
    push_distributions([old], f"{registry.host}/other")  # later, elsewhere: the same release digest
    assert release_digest(registry, "py/featurekit", "0.1.3") == release_digest(
        registry, "other/featurekit", "0.1.3"
    )
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1704067200")  # 2024-01-01
    new = write_wheel(tmp_path / "b", version="0.2.0", value=2)
    push_distributions([new], f"{registry.host}/py")

    document = page(index, "featurekit")
    assert upload_times(document) == {old.name: "2020-01-01T00:00:00Z", new.name: "2024-01-01T00:00:00Z"}

    # uv reads upload-time: --exclude-newer between the two picks the older release.
    import uv

    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=False)
    uv_install = [uv.find_uv_bin(), "pip", "install", "--python", str(python), "--index-url", index]
    run([*uv_install, "--exclude-newer", "2022-06-01T00:00:00Z", "featurekit"], env)
    assert imported(python, env) == "0.1.3 42"
    run([*uv_install, "--exclude-newer", "2025-01-01T00:00:00Z", "--upgrade", "featurekit"], env)
    assert imported(python, env) == "0.2.0 2"


def test_without_an_epoch_the_commit_time_of_a_clean_work_tree_else_the_push_time_is_recorded(
    registry: Registry, index: str, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    wheel = write_wheel(repo / "dist", version="0.1.3")
    git(repo, "add", "-A")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2021-03-04T05:06:07Z")
    git(repo, "commit", "-qm", "release")
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    done = mloci("wheel", "push", str(wheel), f"{registry.host}/py")
    assert done.exit_code == 0, done.stderr

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    loose = write_wheel(tmp_path / "loose", version="0.2.0", value=2)  # outside any work tree
    before = datetime.now(UTC).replace(microsecond=0)
    push_distributions([loose], f"{registry.host}/py")
    after = datetime.now(UTC)

    times = upload_times(page(index, "featurekit"))
    assert times[wheel.name] == "2021-03-04T05:06:07Z"
    pushed = times[loose.name]
    assert pushed is not None and pushed.endswith("Z")
    assert before <= datetime.fromisoformat(pushed) <= after


def test_versions_list_yanked_releases_and_yank_reasons_survive_with_upload_times(
    registry: Registry, index: str, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1577836800")
    push_distributions([write_wheel(tmp_path / "a", version="0.1.3")], f"{registry.host}/py")
    push_distributions([write_wheel(tmp_path / "b", version="0.2.0")], f"{registry.host}/py")
    yanked = mloci("wheel", "yank", f"{registry.host}/py/featurekit==0.2.0", "--reason", "broken <ABI>")
    assert yanked.exit_code == 0, yanked.stderr
    document = page(index, "featurekit")
    assert document["versions"] == ["0.1.3", "0.2.0"]  # PEP 700: every version, yanked ones too
    files = {entry["filename"]: entry for entry in document["files"]}  # type: ignore[attr-defined]
    entry = files["featurekit-0.2.0-py3-none-any.whl"]
    assert entry["yanked"] == "broken <ABI>" and entry["upload-time"] == "2020-01-01T00:00:00Z"
    # The time is the file layer's annotation: yanking (a manifest annotation) does not touch it.
    store = RegistryStore(registry.host)
    try:
        release = read_release(store, Reference(registry.host, "py/featurekit"), "0.2.0")
    finally:
        store.close()
    assert release is not None and release.files[0].layer.annotation(ann.CREATED) == "2020-01-01T00:00:00Z"
