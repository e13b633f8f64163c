"""Test helpers: the real registry process, CLI results, git as a test identity."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "churn-model"
SHARED = REPO_ROOT.parent / "shared"
REGISTRY_BIN = shutil.which("docker-registry") or shutil.which("registry")


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


Runner = Callable[..., Result]


def run_json(mloci: Runner, *args: object) -> dict[str, Any]:
    """``mloci ARGS --json``, which must succeed: the JSON object it printed."""
    result = mloci(*args, "--json")
    assert result.exit_code == 0, result.stderr
    value = json.loads(result.stdout)
    assert isinstance(value, dict), result.stdout
    return value


def one_line_error(stderr: str) -> str:
    """The one ``mloci: error: …`` line a failed command printed (no traceback, nothing else)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("mloci: error: "), stderr
    return lines[0]


def git(cwd: Path, *args: str) -> str:
    """git in ``cwd`` as a fixed identity (each test's HOME is empty: there is no ~/.gitconfig); its stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def random_bundle(parent: Path, name: str, filename: str, size: int) -> Path:
    """A minimal bundle ``parent/name`` with one file of ``size`` incompressible bytes."""
    bundle = parent / name
    bundle.mkdir()
    (bundle / "manifest.json").write_text(f'{{"name": "{name}", "version": "1.0.0"}}')
    (bundle / filename).write_bytes(os.urandom(size))
    return bundle


class Registry:
    """CNCF distribution (Debian's docker-registry) as a plain process on 127.0.0.1 and a free port."""

    def __init__(self, workdir: Path, *, extra_config: str = "") -> None:
        self.workdir = workdir
        self.storage = workdir / "storage"
        self.config = workdir / "config.yml"
        self.log = workdir / "registry.log"
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            "http:\n  addr: 127.0.0.1:0\n  secret: mloci-tests\n" + extra_config
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> None:
        env = {**os.environ, "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port or 0}"}
        assert REGISTRY_BIN is not None
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(self.config)], stdout=log, stderr=log, env=env
            )
        deadline = time.monotonic() + 10
        pattern = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")
        while time.monotonic() < deadline:
            found = pattern.findall(self.log.read_bytes())
            if found and (port is None or int(found[-1]) == port):
                self.port = int(found[-1])
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"registry did not start:\n{self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None

    def requests_matching(self, pattern: str) -> int:
        """How many access-log lines match ``pattern`` (e.g. '"PUT /v2/.*/blobs/uploads')."""
        regex = re.compile(pattern)
        return sum(1 for line in self.log.read_text(errors="replace").splitlines() if regex.search(line))

    def blob_data_path(self, digest: str) -> Path:
        algorithm, encoded = digest.split(":")
        return self.storage / "docker/registry/v2/blobs" / algorithm / encoded[:2] / encoded / "data"
