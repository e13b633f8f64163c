"""PEP 740 provenance for registry files: keyless bundles attached to a release, served by the index.

The bundle is made offline (tests/pep740.py: real structure, self-signed certificate); the
provenance document is checked with pypi-attestations' models, and pip still installs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urljoin

import pypi_attestations as pa
import pytest
import urllib3
from helpers import Registry, Runner
from pep740 import REPOSITORY, keyless_bundle
from pydists import running_index, sha256_of, write_sdist, write_wheel
from sigstore.verify import policy
from test_index import JSON_ACCEPT, fresh_venv, run, tool_env, twine

from mloci.ops.attach import attach_blob
from mloci.ops.sign import bundle_referrers
from mloci.ops.wheel import push_distributions, read_release
from mloci.pyindex.app import IndexConfig, create_app
from mloci.store import RegistryStore
from mloci.trust.bundle import BUNDLE_V03, PREDICATE_ANNOTATION
from mloci.types import Reference
from mloci.types.blob import Blob
from mloci.types.manifest import Descriptor


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


VECTORS = Path(__file__).resolve().parent.parent / "data" / "pep740"
REAL_SDIST = "pypi_attestations-0.0.19.tar.gz"


def test_a_real_pypi_attestation_round_trips_and_verifies_offline_against_the_public_good_sigstore(
    registry: Registry, http: urllib3.PoolManager, mloci: Runner, tmp_path: Path
) -> None:
    sdist = VECTORS / REAL_SDIST
    (pushed,) = push_distributions([sdist], f"{registry.host}/py")
    # What a publisher attaches: the sigstore bundle behind the attestation (sigstore-python's
    # `attest` writes one; pypi-attestations converts either way).
    original = pa.Attestation.model_validate_json(
        (VECTORS / f"{REAL_SDIST}.publish.attestation").read_bytes()
    )
    bundle_file = tmp_path / f"{REAL_SDIST}.sigstore.json"
    bundle_file.write_text(original.to_bundle().to_json())
    attached = mloci("attach", str(pushed.reference), str(bundle_file), "--artifact-type", BUNDLE_V03)
    assert attached.exit_code == 0, attached.stderr

    with running_index(create_app(IndexConfig(registry=registry.host, namespace="py"))) as server:
        page = http.request("GET", f"{server.simple}pypi-attestations/", headers={"Accept": JSON_ACCEPT})
        (entry,) = json.loads(page.data)["files"]
        download = http.request("GET", urljoin(f"{server.simple}pypi-attestations/", entry["url"]))
        answer = http.request("GET", urljoin(f"{server.simple}pypi-attestations/", entry["provenance"]))
    assert answer.status == 200, answer.data
    downloaded = tmp_path / REAL_SDIST
    downloaded.write_bytes(download.data)
    document = json.loads(answer.data)
    (bundle,) = document["attestation_bundles"]
    # Not a Trusted Publisher (an e-mail identity): PEP 740 allows any publisher kind.
    assert bundle["publisher"] == {
        "kind": "Sigstore",
        "claims": {"identity": "jku@goto.fi", "issuer": "https://github.com/login/oauth"},
    }
    (served,) = [pa.Attestation.model_validate(a) for a in bundle["attestations"]]
    assert served.envelope == original.envelope
    assert served.verification_material.certificate == original.verification_material.certificate
    # The verification a client runs (`pypi-attestations verify attestation --identity …` does the same).
    identity = policy.Identity(identity="jku@goto.fi", issuer="https://github.com/login/oauth")
    kind, _ = served.verify(identity, pa.Distribution.from_file(downloaded), offline=True)
    assert kind == "https://docs.pypi.org/attestations/publish/v1"
    with pytest.raises(pa.VerificationError):
        served.verify(
            policy.Identity(identity="someone@else.example", issuer="https://github.com/login/oauth"),
            pa.Distribution.from_file(downloaded),
            offline=True,
        )


def test_twine_upload_with_attestations_keeps_them_through_later_uploads_and_refuses_strangers(
    registry: Registry,
    http: urllib3.PoolManager,
    mloci: Runner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    real = dist / REAL_SDIST
    real.write_bytes((VECTORS / REAL_SDIST).read_bytes())
    (dist / f"{REAL_SDIST}.publish.attestation").write_bytes(
        (VECTORS / f"{REAL_SDIST}.publish.attestation").read_bytes()
    )
    wheel = write_wheel(dist, "pypi-attestations", "0.0.19")
    env = tool_env(tmp_path)
    with running_index(create_app(IndexConfig(registry=registry.host, namespace="py"))) as server:
        # One PEP 740 upload (twine finds <file>.publish.attestation beside the file) ...
        done = twine(
            [real, dist / f"{REAL_SDIST}.publish.attestation"], f"{server.url}/", env, "--attestations"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        # ... then another file of the release, without attestations: the release gets a new digest.
        done = twine([wheel], f"{server.url}/", env)
        assert done.returncode == 0, done.stdout + done.stderr
        page = http.request("GET", f"{server.simple}pypi-attestations/", headers={"Accept": JSON_ACCEPT})
        files = {entry["filename"]: entry for entry in json.loads(page.data)["files"]}
        assert "provenance" not in files[wheel.name]
        answer = http.request(
            "GET", urljoin(f"{server.simple}pypi-attestations/", files[REAL_SDIST]["provenance"])
        )
        assert answer.status == 200, answer.data
        (served,) = json.loads(answer.data)["attestation_bundles"][0]["attestations"]
        identity = policy.Identity(identity="jku@goto.fi", issuer="https://github.com/login/oauth")
        attestation = pa.Attestation.model_validate(served)
        assert attestation.verify(identity, pa.Distribution.from_file(real), offline=True)[0].endswith(
            "publish/v1"
        )

        # A release signature (of one manifest digest) is not carried along; the attestation is,
        # through a yank and a file added by `mloci wheel push` (both give the release a new digest).
        monkeypatch.setenv("MLOCI_KEY_PASSWORD", "pw")
        assert mloci("keygen", "--output-key-prefix", str(tmp_path / "team")).exit_code == 0
        release = f"{registry.host}/py/pypi-attestations:0.0.19"
        signed = mloci("sign", release, "--key", str(tmp_path / "team.key"))
        assert signed.exit_code == 0, signed.stderr
        assert mloci("wheel", "yank", f"{registry.host}/py/pypi-attestations==0.0.19").exit_code == 0
        other = write_wheel(tmp_path / "more", "pypi-attestations", "0.0.19", tag="py311-none-any")
        push_distributions([other], f"{registry.host}/py")
        store = RegistryStore(registry.host)
        try:
            final = read_release(store, Reference.parse(f"{registry.host}/py/pypi-attestations"), "0.0.19")
            assert final is not None and final.yanked == ""
            kinds = [
                (e.annotations or {}).get(PREDICATE_ANNOTATION)
                for e in bundle_referrers(store, Reference.parse(release), final.digest)
            ]
        finally:
            store.close()
        assert kinds == ["https://docs.pypi.org/attestations/publish/v1"]  # not the cosign signature
        page = http.request("GET", f"{server.simple}pypi-attestations/", headers={"Accept": JSON_ACCEPT})
        files = {entry["filename"]: entry for entry in json.loads(page.data)["files"]}
        assert "provenance" in files[REAL_SDIST] and "provenance" not in files[other.name]

        # An attestation of another file is refused, and the file is not published.
        stranger = write_wheel(tmp_path / "other", "pypi-attestations", "0.0.20")
        (stranger.parent / f"{stranger.name}.publish.attestation").write_bytes(
            (VECTORS / f"{REAL_SDIST}.publish.attestation").read_bytes()
        )
        refused = twine(
            [stranger, stranger.parent / f"{stranger.name}.publish.attestation"],
            f"{server.url}/",
            env,
            "--attestations",
            "--verbose",
        )
        assert refused.returncode != 0 and "does not attest" in refused.stdout + refused.stderr
        missing = http.request("GET", f"{server.url}/packages/pypi-attestations/0.0.20/{stranger.name}")
        assert missing.status == 404
