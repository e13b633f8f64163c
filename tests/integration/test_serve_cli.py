"""``mloci serve`` as a user runs it: a real process, --port 0 prints the chosen port."""

from __future__ import annotations

from pathlib import Path

import httpx
from catalog_helpers import SLOW, serving_process
from helpers import Registry, Runner


def test_serve_prints_the_port_and_serves_everything(registry: Registry, mloci: Runner, bundle: Path) -> None:
    assert mloci("push", bundle, f"{registry.host}/ml/churn-model", "-q").exit_code == 0
    with serving_process("--registry", registry.host, "--namespace", "ml") as url:
        page = httpx.get(url + "/", timeout=SLOW)
        assert page.status_code == 200 and "churn-model" in page.text
        assert httpx.get(url + "/api/v1/models", timeout=SLOW).json()["total"] == 1
        assert httpx.get(url + "/simple/", timeout=SLOW).status_code == 200


def test_serve_refuses_bad_options(mloci: Runner, tmp_path: Path) -> None:
    missing = mloci("serve", "--policy", f"prod={tmp_path / 'nope.yaml'}")
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    bad = mloci("serve", "--policy", "prod")
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.stderr
