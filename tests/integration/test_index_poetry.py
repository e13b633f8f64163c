"""poetry resolves and installs from the index as its one (primary) source: a private package from the
registry, its public dependency from upstream, and never the public package of a private name.

poetry pins its own dependencies, so it lives in its own virtual environment, ``.venv-poetry`` at
the repository root (scripts/test.sh makes it; this module makes it once when it is missing).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Registry
from pydists import IndexServer, PypiServer, running_index, write_wheel
from test_index import run, tool_env

from mloci.ops.wheel import push_distributions
from mloci.pyindex.app import IndexConfig, create_app

REPO_ROOT = Path(__file__).resolve().parents[2]
POETRY_VENV = REPO_ROOT / ".venv-poetry"


@pytest.fixture(scope="session")
def poetry() -> Path:
    binary = POETRY_VENV / "bin" / "poetry"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(POETRY_VENV)], check=True)
        subprocess.run(
            [str(POETRY_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "poetry>=2"],
            check=True,
            capture_output=True,
        )
    return binary


@pytest.fixture
def proxy(registry: Registry, pypi: PypiServer) -> Iterator[IndexServer]:
    config = IndexConfig(
        registry=registry.host, namespace="py", upstreams=(pypi.simple,), upstream_timeout=10
    )
    with running_index(create_app(config)) as server:
        yield server


def test_poetry_locks_and_installs_a_private_package_with_a_public_dependency_from_one_primary_source(
    poetry: Path, registry: Registry, pypi: PypiServer, proxy: IndexServer, tmp_path: Path
) -> None:
    write_wheel(pypi.packages, "publicdep", "2.0")
    write_wheel(pypi.packages, "featurekit", "99.0", value=666)  # the attacker's, on the public index
    dist = tmp_path / "dist"
    push_distributions(
        [
            write_wheel(dist, "featurekit", "0.1.3"),
            write_wheel(dist, "appkit", "1.0", requires=("publicdep>=2", "featurekit")),
        ],
        f"{registry.host}/py",
    )
    project = tmp_path / "consumer"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[project]\n"
        'name = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.9"\ndependencies = ["appkit"]\n\n'
        "[tool.poetry]\npackage-mode = false\n\n"
        '[[tool.poetry.source]]\nname = "internal"\n'
        f'url = "{proxy.simple}"\npriority = "primary"\n'
    )
    env = tool_env(tmp_path) | {
        "POETRY_CACHE_DIR": str(tmp_path / "poetry-cache"),
        "POETRY_CONFIG_DIR": str(tmp_path / "poetry-config"),
        "POETRY_DATA_DIR": str(tmp_path / "poetry-data"),
        "POETRY_VIRTUALENVS_IN_PROJECT": "true",
        "POETRY_NO_INTERACTION": "1",
        "POETRY_KEYRING_ENABLED": "false",
    }
    run([str(poetry), "-C", str(project), "lock"], env)
    locked = {p["name"]: p for p in tomllib.loads((project / "poetry.lock").read_text())["package"]}
    assert {name: p["version"] for name, p in locked.items()} == {
        "appkit": "1.0",
        "featurekit": "0.1.3",  # the private one, never 99.0 from upstream
        "publicdep": "2.0",
    }
    assert {p["source"]["url"] for p in locked.values()} == {proxy.simple.rstrip("/")}  # only the index
    run([str(poetry), "-C", str(project), "install", "--no-root"], env)
    python = project / ".venv" / "bin" / "python"
    imported = run([str(python), "-c", "import featurekit, publicdep; print(featurekit.VALUE)"], env).stdout
    assert imported.strip() == "42"
    assert "/upstream/publicdep/publicdep-2.0-py3-none-any.whl" in proxy.paths()
    assert pypi.requests("/featurekit") == 0  # upstream was never asked about the private name
