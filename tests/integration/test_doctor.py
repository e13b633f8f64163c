from __future__ import annotations

import json

import pytest
from auth_fixtures import TokenRegistry
from helpers import Registry, Runner


def findings(mloci: Runner, *args: str) -> dict[str, dict[str, object]]:
    result = mloci("doctor", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return {f["name"]: f for f in json.loads(result.stdout)["findings"]}


def test_doctor_describes_distribution(mloci: Runner, registry: Registry) -> None:
    found = findings(mloci, registry.host)
    assert found["reachable"]["supported"] is True
    assert "anonymous" in str(found["reachable"]["detail"])
    assert found["push (chunked upload)"]["supported"] is True
    assert found["OCI 1.1 artifact manifests"]["supported"] is True
    assert found["referrers API"]["supported"] is False  # distribution 2.8 predates OCI 1.1 referrers
    assert found["cross-repository blob mount"]["supported"] is True
    assert found["deletes"]["supported"] is True
    text = mloci("doctor", registry.host)
    assert "referrers tag schema" in text.stdout


def test_doctor_reports_token_auth(
    mloci: Runner, token_registry: TokenRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_USERNAME", "alice")
    monkeypatch.setenv("MLOCI_PASSWORD", "wonderland-secret")
    found = findings(mloci, token_registry.registry.host)
    assert "bearer token" in str(found["reachable"]["detail"])
    assert found["credentials"]["supported"] is True
    assert found["deletes"]["supported"] is True


def test_doctor_on_an_unreachable_registry_fails(mloci: Runner) -> None:
    assert mloci("doctor", "127.0.0.1:9").exit_code == 8
