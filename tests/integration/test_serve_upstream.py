"""``mloci serve --upstream``: the catalog server's /simple/ is the team's one index, as `mloci index serve` is.

A real `mloci serve` process in front of the real registry and a real upstream (pypiserver); pip is
the client.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from catalog_helpers import SLOW
from helpers import Registry, Runner
from pydists import PypiServer, running_pypiserver, write_wheel
from test_index import fresh_venv, imported, run, tool_env
from test_index_upstream import pip_install, publish


@pytest.fixture
def pypi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PypiServer]:
    with running_pypiserver(tmp_path_factory.mktemp("pypiserver")) as server:
        yield server


@pytest.fixture
def served(registry: Registry, pypi: PypiServer) -> Iterator[str]:
    """The URL of `mloci serve --registry R --namespace py --upstream PYPI` running as a process."""
    command = [sys.executable, "-m", "mloci", "serve", "--registry", registry.host, "--namespace", "py"]
    process = subprocess.Popen(
        [
            *command,
            "--upstream",
            pypi.simple,
            "--upstream-timeout",
            "5",
            "--port",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("mloci serve: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip().rstrip("/")
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/simple/", timeout=SLOW)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert "Traceback" not in err


def test_serve_passes_public_projects_through_and_keeps_private_names_private(
    registry: Registry, pypi: PypiServer, served: str, tmp_path: Path
) -> None:
    write_wheel(pypi.packages, version="99.0", value=666)  # the attacker's featurekit upstream
    write_wheel(pypi.packages, "publicdep", "2.0")
    publish(registry, write_wheel(tmp_path / "dist", version="0.1.3", requires=("publicdep>=2",)))
    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=False)
    output = pip_install(python, f"{served}/simple/", env, "featurekit")
    assert "publicdep-2.0" in output  # the dependency came from upstream, through the server
    assert imported(python, env) == "0.1.3 42"  # the private project, never upstream's 99.0
    assert pypi.requests("/featurekit") == 0  # upstream was never even asked about the name
    done = run([str(python), "-c", "import publicdep"], env, check=False)
    assert done.returncode == 0


def test_serve_upstream_options_need_a_registry(mloci: Runner) -> None:
    result = mloci("serve", "--upstream", "http://127.0.0.1:9/simple/")
    assert result.exit_code == 2 and "--upstream needs --registry" in result.stderr
