"""``mloci serve`` as a user runs it: a real process, --port 0 prints the chosen port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from catalog_helpers import SLOW
from helpers import Registry, Runner


def test_serve_prints_the_port_and_serves_everything(registry: Registry, mloci: Runner, bundle: Path) -> None:
    assert mloci("push", bundle, f"{registry.host}/ml/churn-model", "-q").exit_code == 0
    command = [sys.executable, "-m", "mloci", "serve", "--registry", registry.host, "--namespace", "ml"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--log-level", "warning"],
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
                page = httpx.get(url + "/", timeout=SLOW)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.1)
        assert page.status_code == 200 and "churn-model" in page.text
        assert httpx.get(url + "/api/v1/models", timeout=SLOW).json()["total"] == 1
        assert httpx.get(url + "/simple/", timeout=SLOW).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert "Traceback" not in err


def test_serve_refuses_bad_options(mloci: Runner, tmp_path: Path) -> None:
    missing = mloci("serve", "--policy", f"prod={tmp_path / 'nope.yaml'}")
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    bad = mloci("serve", "--policy", "prod")
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.stderr
