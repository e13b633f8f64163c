"""The tools the tests launch read and write only the test's own homes, never the machine's.

Each tool writes a unique marker where its configuration or cache lives; the marker must show up
under the test's HOME/XDG directories and nowhere in the real home.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import uv
from helpers import Registry

REAL_HOME = Path(pwd.getpwuid(os.getuid()).pw_dir)


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{args[:3]}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


def mentions(path: Path, text: str) -> bool:
    return path.is_file() and text in path.read_text(errors="ignore")


def holds(root: Path, text: str) -> list[Path]:
    """The files under ``root`` that contain ``text``."""
    return sorted(path for path in root.rglob("*") if mentions(path, text))


@pytest.fixture
def marker() -> str:
    return f"mloci-isolation-{uuid.uuid4().hex}"


def test_pip_and_uv_use_the_sessions_shared_cache(tool_cache: Path) -> None:
    assert Path(run(sys.executable, "-m", "pip", "cache", "dir")) == tool_cache / "pip"
    assert Path(run(uv.find_uv_bin(), "cache", "dir")) == tool_cache / "uv"


def test_git_writes_its_global_config_to_the_tests_home(marker: str) -> None:
    run("git", "config", "--global", "mloci.marker", marker)
    assert holds(Path(os.environ["HOME"]), marker) == [Path(os.environ["HOME"]) / ".gitconfig"]
    assert not mentions(REAL_HOME / ".gitconfig", marker)


def test_skopeo_keeps_its_login_in_the_tests_docker_config(registry: Registry, marker: str) -> None:
    run("skopeo", "login", "--tls-verify=false", "-u", "tester", "-p", marker, registry.host)
    # The password is stored base64-encoded, the registry's host as it is.
    docker_config = Path(os.environ["DOCKER_CONFIG"])
    assert holds(docker_config, registry.host) == [docker_config / "config.json"]
    assert holds(Path(os.environ["HOME"]), registry.host) == []
    for default in (
        Path(f"/run/containers/{os.getuid()}/auth.json"),
        REAL_HOME / ".config" / "containers" / "auth.json",
        REAL_HOME / ".docker" / "config.json",
    ):
        assert not mentions(default, registry.host)


def test_sigstore_keeps_its_offline_trust_root_in_the_tests_cache() -> None:
    run(
        sys.executable,
        "-c",
        "from sigstore.models import ClientTrustConfig; ClientTrustConfig.production(offline=True)",
    )
    assert list((Path(os.environ["XDG_CACHE_HOME"]) / "sigstore-python").rglob("trusted_root.json"))
