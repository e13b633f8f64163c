"""Shared fixtures: a real CNCF distribution registry per test, an isolated MLOCI_HOME, the CLI in-process.

Every test runs with its own HOME, MLOCI_HOME, DOCKER_CONFIG and XDG base directories, so neither
mloci nor a tool a test launches (pip, uv, git, skopeo, chromium, sigstore…) reads or writes the
machine's. Only pip's and uv's content-addressed download caches are shared, per session, for speed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from faultproxy import FaultProxy
from helpers import EXAMPLE, REGISTRY_BIN, Registry, Result, Runner
from pydists import PypiServer, running_pypiserver

from mloci.cli import main

pytest_plugins = ["auth_fixtures"]


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if REGISTRY_BIN is None:
        pytest.fail("docker-registry is not installed (apt-get install docker-registry)")
    reg = Registry(tmp_path_factory.mktemp("registry"))
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


# The XDG base directories, each where the spec puts it by default under a (fake) HOME.
XDG_HOMES = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_CACHE_HOME": ".cache",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
    "XDG_RUNTIME_DIR": ".run",
}


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    """A proxy in front of ``registry`` that injects the faults a test adds (drops, errors, delays)."""
    fp = FaultProxy(registry.port or 0)
    yield fp
    fp.close()


@pytest.fixture(scope="session")
def tool_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip's and uv's caches, shared by the session's tests: warm after the first install, never the machine's."""
    return tmp_path_factory.mktemp("tool-cache")


@pytest.fixture(autouse=True)
def mloci_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, tool_cache: Path
) -> Path:
    """Every test gets its own MLOCI_HOME, HOME and XDG directories and no ambient registry or credentials."""
    user = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(user))
    for name, relative in XDG_HOMES.items():
        monkeypatch.setenv(name, str(user / relative))
    (user / XDG_HOMES["XDG_RUNTIME_DIR"]).mkdir(mode=0o700)  # the spec: it exists, private to the user
    monkeypatch.setenv("PIP_CACHE_DIR", str(tool_cache / "pip"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tool_cache / "uv"))
    home = tmp_path_factory.mktemp("mloci-home")
    monkeypatch.setenv("MLOCI_HOME", str(home))
    for name in (
        "MLOCI_REGISTRY",
        "MLOCI_USERNAME",
        "MLOCI_PASSWORD",
        "MLOCI_INSECURE",
        "MLOCI_CA_FILE",
        "SOURCE_DATE_EPOCH",
        "MLOCI_KEY_PASSWORD",
        "MLOCI_ACTOR",
    ):
        monkeypatch.delenv(name, raising=False)
    # Credentials and container configuration come only from the test's own (empty) directories.
    docker_config = home / "docker-config"
    docker_config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    # Mirrors come only from a test's own registries.conf, never the machine's /etc/containers one.
    no_mirrors = home / "registries.conf"
    no_mirrors.write_text("")
    monkeypatch.setenv("MLOCI_REGISTRIES_CONF", str(no_mirrors))
    return home


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A copy of the example bundle outside any git work tree (so no git SHA is recorded)."""
    target = tmp_path / "churn-model"
    shutil.copytree(EXAMPLE, target)
    return target


@pytest.fixture
def mloci(capsys: pytest.CaptureFixture[str]) -> Runner:
    """Run the CLI in-process through its real entry point; returns exit code and captured output."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


# -- the package-index tests: an HTTP client and a real upstream index ------------------------------


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    """A plain client that neither retries nor follows redirects, so tests see each answer."""
    pool = urllib3.PoolManager(retries=False, timeout=30.0)
    try:
        yield pool
    finally:
        pool.clear()


@pytest.fixture
def pypi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PypiServer]:
    """pypiserver, a real third-party index, on 127.0.0.1 as the upstream."""
    with running_pypiserver(tmp_path_factory.mktemp("pypiserver")) as server:
        yield server
