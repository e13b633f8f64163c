"""PEP 740 provenance for registry files: keyless bundles attached to a release, served by the index.

The bundle is made offline (tests/pep740.py: real structure, self-signed certificate); the
provenance document is checked with pypi-attestations' models, and pip still installs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pypi_attestations as pa
import pytest
import urllib3
from helpers import Registry
from pep740 import REPOSITORY, keyless_bundle
from pydists import running_index, sha256_of, write_sdist, write_wheel
from test_index import JSON_ACCEPT, fresh_venv, run, tool_env

from mloci.ops.attach import attach_blob
from mloci.ops.wheel import push_distributions
from mloci.pyindex.app import IndexConfig, create_app
from mloci.trust.bundle import BUNDLE_V03
from mloci.types import Reference
from mloci.types.blob import Blob
from mloci.types.manifest import Descriptor


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(retries=False, timeout=30.0)
    try:
        yield pool
    finally:
        pool.clear()


def attach_bundle(registry: Registry, release: str, data: bytes) -> None:
    layer = Descriptor.of_bytes(BUNDLE_V03, data)
    attach_blob(Reference.parse(release), Blob(layer, data=data), artifact_type=BUNDLE_V03)


def test_a_keyless_attestation_of_a_wheel_is_served_as_pep_740_provenance(
    registry: Registry, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    wheel = write_wheel(tmp_path / "dist", version="0.1.3")
    sdist = write_sdist(tmp_path / "dist", version="0.1.3")
    (pushed,) = push_distributions([wheel, sdist], f"{registry.host}/py")  # sign after the last file
    attach_bundle(registry, str(pushed.reference), keyless_bundle(wheel.name, sha256_of(wheel)))
    attach_bundle(registry, str(pushed.reference), keyless_bundle("other-1.0.tar.gz", sha256_of(sdist)))

    with running_index(create_app(IndexConfig(registry=registry.host, namespace="py"))) as server:
        page = http.request("GET", f"{server.simple}featurekit/", headers={"Accept": JSON_ACCEPT})
        files = {entry["filename"]: entry for entry in json.loads(page.data)["files"]}
        assert "provenance" not in files[sdist.name]  # only the wheel is attested
        url = files[wheel.name]["provenance"]
        assert url == f"../../provenance/featurekit/0.1.3/{wheel.name}"
        html = http.request(
            "GET", f"{server.simple}featurekit/", headers={"Accept": "text/html"}
        ).data.decode()
        assert f'data-provenance="{url}"' in html

        answer = http.request("GET", f"{server.simple}featurekit/{url}")
        assert (
            answer.status == 200
            and answer.headers["Content-Type"] == "application/vnd.pypi.integrity.v1+json"
        )
        provenance = pa.Provenance.model_validate_json(answer.data)
        (bundle,) = provenance.attestation_bundles
        assert isinstance(bundle.publisher, pa.GitHubPublisher) and bundle.publisher.repository == REPOSITORY
        subject = bundle.attestations[0].statement["subject"][0]
        assert subject == {"name": wheel.name, "digest": {"sha256": sha256_of(wheel)}}
        none = http.request("GET", f"{server.url}/provenance/featurekit/0.1.3/{sdist.name}")
        assert none.status == 404 and b"no keyless attestation" in none.data

        # Installers ignore provenance: pip installs from the page as before.
        env = tool_env(tmp_path)
        python = fresh_venv(tmp_path / "venv", env, with_pip=False)
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "install",
                "--index-url",
                server.simple,
                "featurekit",
            ],
            env,
        )
