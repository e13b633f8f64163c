"""``mloci serve --upstream``: the catalog server's /simple/ is the team's one index, as `mloci index serve` is.

A real `mloci serve` process in front of the real registry and a real upstream (pypiserver); pip is
the client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_helpers import serving_process
from helpers import Registry, Runner
from pydists import PypiServer, write_wheel
from test_index import fresh_venv, imported, run, tool_env
from test_index_upstream import pip_install, publish


@pytest.fixture
def served(registry: Registry, pypi: PypiServer) -> Iterator[str]:
    """The URL of `mloci serve --registry R --namespace py --upstream PYPI` running as a process."""
    args = (
        "--registry",
        registry.host,
        "--namespace",
        "py",
        "--upstream",
        pypi.simple,
        "--upstream-timeout",
        "5",
    )
    with serving_process(*args) as url:
        yield url


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
