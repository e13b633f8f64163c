"""The autouse fixture gives each test its own homes: nothing reads or writes the machine's.

tests/integration/test_tool_isolation.py checks the same for the tools the tests launch.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import platformdirs
import pytest
from conftest import XDG_HOMES

from mloci import settings
from mloci.store.registry import credentials

# Read at collection, before any fixture: the account's real home, whatever $HOME says.
REAL_HOMES = {Path(pwd.getpwuid(os.getuid()).pw_dir).resolve(), Path("~").expanduser().resolve()}
ISOLATED = ("HOME", "MLOCI_HOME", "DOCKER_CONFIG", *XDG_HOMES, "PIP_CACHE_DIR", "UV_CACHE_DIR")


def _inside(path: str | Path, base: Path) -> bool:
    return Path(path).resolve().is_relative_to(base)


def test_every_home_and_cache_is_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp().resolve()
    for name in ISOLATED:
        assert _inside(os.environ[name], base), f"{name}={os.environ[name]} is outside {base}"
    # Every XDG base directory, including any the fixture does not know of (the *_DIRS are system search paths).
    user_dirs = [name for name in os.environ if name.startswith("XDG_") and not name.endswith("_DIRS")]
    assert set(XDG_HOMES) <= set(user_dirs)
    for name in user_dirs:
        assert _inside(os.environ[name], base), f"{name}={os.environ[name]} is outside {base}"


def test_the_homes_are_fresh_and_this_tests_own(mloci_home: Path) -> None:
    home = Path(os.environ["HOME"])
    assert sorted(p.name for p in home.iterdir()) == [".run"]  # only the runtime directory exists yet
    assert (home / ".run").stat().st_mode & 0o777 == 0o700
    assert Path(os.environ["MLOCI_HOME"]) == mloci_home
    assert not any(Path(os.environ["DOCKER_CONFIG"]).iterdir())  # no credentials at all
    assert home != mloci_home and not home.is_relative_to(mloci_home)


def test_lookups_resolve_to_the_tests_homes(tmp_path_factory: pytest.TempPathFactory) -> None:
    """What mloci and the libraries it loads compute from the environment lands in the test's directories."""
    base = tmp_path_factory.getbasetemp().resolve()
    looked_up = {
        "Path.home()": Path.home(),
        "~": Path("~").expanduser(),
        "mloci home": settings.home(),
        "docker config.json": credentials.config_path(),
        "sigstore data": platformdirs.user_data_dir("sigstore-python", "sigstore"),
        "sigstore cache": platformdirs.user_cache_dir("sigstore-python", "sigstore"),
        "containers config": platformdirs.user_config_dir("containers"),
        "state": platformdirs.user_state_dir("mloci"),
        "runtime": platformdirs.user_runtime_dir("containers"),
    }
    for what, path in looked_up.items():
        assert _inside(path, base), f"{what} resolves to {path}, outside {base}"
        for real in REAL_HOMES:
            if real != Path("/"):
                assert not _inside(path, real), f"{what} resolves to {path}, in the real home {real}"
