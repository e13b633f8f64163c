"""``--cache-upstream``: a cached public file is served only while the upstream still lists it unchanged.

The upstream is a real pypiserver whose package directory the tests change under it: a file
replaced by other bytes under the same name, then withdrawn. pip is the real client.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import pytest
import urllib3
from helpers import Registry
from pydists import running_index, running_pypiserver, sha256_of, write_wheel
from test_index import fresh_venv, imported, run, tool_env

from mloci.ops.wheel import read_release
from mloci.pyindex.app import IndexConfig, create_app
from mloci.store import RegistryStore
from mloci.types import Reference


def cached_sha256(registry: Registry, project: str, version: str) -> str | None:
    store = RegistryStore(registry.host)
    try:
        release = read_release(store, Reference(registry.host, f"pypi-cache/{project}"), version)
    finally:
        store.close()
    return release.files[0].sha256 if release is not None else None


def wait_until_cached(registry: Registry, project: str, version: str) -> str:
    deadline = time.monotonic() + 30
    while (digest := cached_sha256(registry, project, version)) is None:
        assert time.monotonic() < deadline, "the file was not cached"
        time.sleep(0.2)
    return digest


def test_a_cached_file_is_served_only_while_the_upstream_lists_it_with_the_same_hash(
    registry: Registry, http: urllib3.PoolManager, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = tool_env(tmp_path)
    with running_pypiserver(tmp_path / "pypi") as pypi:
        original = write_wheel(pypi.packages, version="1.0", value=1)
        first_sha256 = sha256_of(original)
        config = IndexConfig(
            registry=registry.host,
            namespace="py",
            upstreams=(pypi.simple,),
            upstream_cache_seconds=0,  # every request sees the upstream's page as it is now
            cache_namespace="pypi-cache",
        )
        with running_index(create_app(config)) as server:
            python = fresh_venv(tmp_path / "venv", env, with_pip=False)
            run([*pip(python, server.simple), "featurekit"], env)
            assert wait_until_cached(registry, "featurekit", "1.0") == first_sha256
            file_url = f"{server.url}/upstream/featurekit/{original.name}"
            fetched_before = pypi.requests(f"/packages/{original.name}")

            # Unchanged upstream: the cached copy is served (the upstream's file is not fetched again).
            same = http.request("GET", file_url)
            assert same.status == 200 and hashlib.sha256(same.data).hexdigest() == first_sha256
            assert pypi.requests(f"/packages/{original.name}") == fetched_before

            # The upstream replaces the file under the same name: its page lists another sha256.
            original.unlink()
            replaced = write_wheel(pypi.packages, version="1.0", value=2)
            assert replaced.name == original.name and sha256_of(replaced) != first_sha256
            with caplog.at_level(logging.WARNING, logger="mloci.pyindex"):
                changed = http.request("GET", file_url)
            assert changed.status == 200
            # Never the stale bytes under the page's new hash: the upstream's file, as its page says.
            assert hashlib.sha256(changed.data).hexdigest() == sha256_of(replaced)
            assert any(
                "changed upstream since it was cached" in r.getMessage() and first_sha256 in r.getMessage()
                for r in caplog.records
            )
            python2 = fresh_venv(tmp_path / "venv2", env, with_pip=False)
            run([*pip(python2, server.simple), "featurekit"], env)  # pip checks the page's hash
            assert imported(python2, env) == "1.0 2"
            time.sleep(0.5)  # a (wrong) re-cache would be published in the background by now
            assert cached_sha256(registry, "featurekit", "1.0") == first_sha256  # the cache is not rewritten

            # The upstream withdraws the file: the cached copy is no longer served either.
            replaced.unlink()
            gone = http.request("GET", file_url)
            assert gone.status == 404, gone.data


def pip(python: Path, index: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "pip", "--python", str(python), "install", "--index-url", index]
