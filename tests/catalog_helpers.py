"""Test data for the catalog: models with several versions, metrics and promotions, in a real store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import EXAMPLE, Runner
from pydists import IndexServer, running_index

from mloci.catalog import Catalog, CatalogConfig
from mloci.web import ServeConfig, create_app

SLOW = 120.0  # seconds an HTTP request may take on a loaded CI machine

CHURN_AUC = {"1.0.0": 0.81, "1.1.0": 0.86, "1.2.0": 0.93}


def model_version(parent: Path, version: str, metrics: dict[str, float], **fields: object) -> Path:
    """A copy of the example bundle at ``version`` with ``metrics`` (and other manifest fields)."""
    target = parent / f"churn-{version}"
    shutil.copytree(EXAMPLE, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.pop("$schema", None)
    manifest.update(version=version, **fields)
    (target / "manifest.json").write_text(json.dumps(manifest))
    (target / "metrics.json").write_text(json.dumps(metrics))
    (target / "model.onnx").write_bytes((target / "model.onnx").read_bytes() + version.encode())
    return target


def attach_trust(mloci: Runner, tmp_path: Path, reference: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign ``reference``, attach its SBOM, SLSA provenance and test results (every badge)."""
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "catalog-tests")
    prefix = tmp_path / "signing"
    results = tmp_path / "tests.json"
    results.write_text('{"passed": 12, "failed": 0}')
    for args in (
        ("keygen", "--output-key-prefix", prefix),
        ("sign", reference, "--key", f"{prefix}.key"),
        ("sbom", reference, "--attach"),
        ("attest", reference, "--key", f"{prefix}.key"),
        ("attach", reference, results, "--artifact-type", "application/vnd.mloci.test-results.v1+json"),
    ):
        result = mloci(*args)
        assert result.exit_code == 0, (args, result.stderr)


def populate(mloci: Runner, tmp_path: Path, base: str) -> dict[str, str]:
    """churn-model 1.0.0 → 1.2.0 (prod promoted twice, staging once) and a second model; version → digest."""
    digests: dict[str, str] = {}
    for version, auc in CHURN_AUC.items():
        bundle = model_version(tmp_path, version, {"auc": auc, "f1": round(auc - 0.2, 3)})
        result = mloci("push", bundle, f"{base}churn-model", "--json", "-q")
        assert result.exit_code == 0, result.stderr
        digests[version] = json.loads(result.stdout)["digest"]
    for version, reason in (("1.0.0", "first release"), ("1.1.0", "better auc")):
        result = mloci("promote", f"{base}churn-model:{version}", "--to", "prod", "--reason", reason)
        assert result.exit_code == 0, result.stderr
    assert mloci("promote", f"{base}churn-model:1.2.0", "--to", "staging").exit_code == 0
    (tmp_path / "fraud").mkdir()
    fraud = model_version(
        tmp_path / "fraud", "0.3.0", {"auc": 0.7}, name="fraud-detector", description="Card fraud scores."
    )
    result = mloci("push", fraud, f"{base}team/fraud-detector", "-q")
    assert result.exit_code == 0, result.stderr
    return digests


@contextmanager
def running_catalog(config: CatalogConfig, **serve: Any) -> Iterator[IndexServer]:
    catalog = Catalog(config)
    with running_index(create_app(ServeConfig(catalog=config, **serve), catalog=catalog)) as server:
        yield server


@contextmanager
def serving_process(*args: str) -> Iterator[str]:
    """`mloci serve ARGS --port 0` as a user runs it: a real process; yields its base URL once it answers.

    On exit it is stopped with Ctrl-C, and must not have printed a traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mloci", "serve", *args, "--port", "0", "--log-level", "warning"],
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
                httpx.get(url + "/api/v1/openapi.json", timeout=SLOW)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert "Traceback" not in err
