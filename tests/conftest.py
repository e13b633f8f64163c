"""Shared fixtures: a real CNCF distribution registry per test, an isolated MLOCI_HOME, the CLI in-process."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import EXAMPLE, REGISTRY_BIN, Registry, Result, Runner

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


@pytest.fixture(autouse=True)
def mloci_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own MLOCI_HOME and no ambient registry or credentials."""
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
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
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
