"""The shipped examples stay valid: Kubernetes manifests parse and pin digests; the example bundle validates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import REPO_ROOT

from mloci.types import Reference

K8S = sorted((REPO_ROOT / "examples" / "k8s").glob("*.yaml"))


@pytest.mark.parametrize("path", K8S, ids=[p.name for p in K8S])
def test_kubernetes_examples_parse_and_pin_digests(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert documents and all("apiVersion" in d and "kind" in d for d in documents)
    text = path.read_text()
    for line in text.splitlines():
        if "registry.example.com/ml/churn-model" in line and "@sha256:" in line:
            ref = line.split("registry.example.com", 1)[1].split()[0]
            assert Reference.parse("registry.example.com" + ref).digest is not None


def test_init_container_runs_a_verified_pull_by_digest() -> None:
    deployment = yaml.safe_load((REPO_ROOT / "examples" / "k8s" / "deployment.yaml").read_text())
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    args = init["args"]
    assert args[0] == "pull"
    assert Reference.parse(args[1]).digest is not None
    assert any(a.startswith("--verify-key=") for a in args)
    assert {"name": "DOCKER_CONFIG", "value": "/docker"} in init["env"]
