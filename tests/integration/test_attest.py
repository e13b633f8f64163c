"""attest / verify-attestation, verified pull, and policy `require:` against a real registry.

The DSSE pre-authentication encoding is checked against the test vector of the DSSE protocol
spec, including its published ECDSA P-256 signature, so mloci's PAE is the spec's and not merely
self-consistent. Attestations are then verified by hand from the registry's bytes as well as by
mloci, tampered with, and moved onto other artifacts.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import urllib3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from helpers import Registry, Runner, one_line_error, run_json

from mloci import __version__
from mloci.errors import IntegrityError
from mloci.ops import policy
from mloci.ops.attach import attach_blob
from mloci.ops.attest import (
    Envelope,
    detect_source,
    pae,
    redact_url,
    sign_envelope,
    signed_by,
    statement_of,
    verify_attestation,
)
from mloci.ops.pull import pull
from mloci.ops.sign import generate_keypair
from mloci.types import Reference
from mloci.types.blob import Blob
from mloci.types.mediatype import DSSE_ENVELOPE

SLSA = "https://slsa.dev/provenance/v1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(autouse=True)
def isolated_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # outside any git work tree
    for name in (
        "GITHUB_REPOSITORY",
        "GITHUB_ACTIONS",
        "GITHUB_RUN_ID",
        "GITHUB_SHA",
        "GITHUB_REF",
        "GITLAB_CI",
        "CI_PROJECT_URL",
        "CI_JOB_URL",
        "BUILDKITE_BUILD_URL",
        "BUILD_URL",
        "MLOCI_BUILDER_ID",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "mloci", b"", allow_unencrypted=True)


def push(mloci: Runner, bundle: Path, repo: str, version: str | None = None) -> str:
    if version:
        path = bundle / "manifest.json"
        document = json.loads(path.read_text())
        document["version"] = version
        path.write_text(json.dumps(document, indent=2))
    return str(run_json(mloci, "push", bundle, repo)["digest"])


def http_get(registry: Registry, path: str, accept: str = OCI_MANIFEST) -> bytes:
    response = urllib3.request("GET", f"http://{registry.host}{path}", headers={"Accept": accept})
    assert response.status == 200, response.data
    return response.data


def envelope_of(registry: Registry, repo: str, attestation: str) -> bytes:
    manifest = json.loads(http_get(registry, f"/v2/{repo}/manifests/{attestation}"))
    [layer] = manifest["layers"]
    assert layer["mediaType"] == DSSE_ENVELOPE
    return http_get(registry, f"/v2/{repo}/blobs/{layer['digest']}", accept="*/*")


# -- DSSE ----------------------------------------------------------------------------------------


def test_pae_is_the_dsse_spec_encoding_and_verifies_the_spec_test_vector() -> None:
    payload_type, body = "http://example.com/HelloWorld", b"hello world"
    assert pae(payload_type, body) == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("t", b"") == b"DSSEv1 1 t 0 "
    # secure-systems-lab/dsse protocol.md: P-256 key and its raw r||s signature of that PAE.
    x = 46950820868899156662930047687818585632848591499744589407958293238635476079160
    y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
    key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    raw = base64.b64decode(
        "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="
    )
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, pae(payload_type, body), ec.ECDSA(hashes.SHA256()))
    envelope = Envelope.from_json(
        json.dumps(
            {
                "payload": base64.b64encode(body).decode(),
                "payloadType": payload_type,
                "signatures": [{"sig": ""}],
            }
        ).encode()
    )
    assert envelope.payload == body and envelope.signatures[0].keyid == ""


def test_envelopes_accept_url_safe_base64_and_reject_other_keys() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    envelope = sign_envelope(b'{"_type":"x"}' * 20, key)
    document = json.loads(envelope.to_json())
    assert set(document) == {"payload", "payloadType", "signatures"}
    assert document["payloadType"] == "application/vnd.in-toto+json"
    document["payload"] = base64.urlsafe_b64encode(envelope.payload).decode().rstrip("=")
    document["signatures"][0]["sig"] = base64.urlsafe_b64encode(envelope.signatures[0].sig).decode()
    parsed = Envelope.from_json(json.dumps(document).encode())
    assert signed_by(parsed, key.public_key())
    assert not signed_by(parsed, ec.generate_private_key(ec.SECP256R1()).public_key())
    retyped = Envelope("application/json", parsed.payload, parsed.signatures)
    assert not signed_by(retyped, key.public_key())  # the payload type is signed too


def test_git_remote_credentials_never_reach_the_provenance(monkeypatch: pytest.MonkeyPatch) -> None:
    assert redact_url("https://user:ghp_secret@github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact_url("git@github.com:o/r.git") == "git@github.com:o/r.git"
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/model")
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    source = detect_source(None)
    assert source.repository == "https://github.com/octo/model"
    assert source.commit == "a" * 40 and source.ref == "refs/heads/main"
    assert detect_source("b" * 40).commit == "b" * 40  # the model's own record wins


# -- attest / verify -----------------------------------------------------------------------------


def test_attest_round_trip_verifies_by_hand_and_with_mloci(
    mloci: Runner, registry: Registry, bundle: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = keys
    repo = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, repo)
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/model")
    monkeypatch.setenv("GITHUB_SHA", "c" * 40)
    result = run_json(mloci, "attest", f"{repo}:1.0.0", "--key", private, "--format", "dsse")
    assert result["digest"] == digest and result["predicateType"] == SLSA

    statement = result["statement"]
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [
        {
            "name": f"{registry.host}/ml/churn",
            "uri": f"pkg:oci/churn@{digest}?repository_url={registry.host}/ml/churn",
            "digest": {"sha256": digest.split(":")[1]},
        }
    ]
    assert statement["predicateType"] == SLSA
    build = statement["predicate"]["buildDefinition"]
    assert build["buildType"].startswith("https://")
    assert build["externalParameters"] == {
        "reference": f"{repo}:1.0.0",
        "repository": "https://github.com/octo/model",
        "commit": "c" * 40,
    }
    assert build["internalParameters"]["framework"] == "onnx-1.23"
    deps = build["resolvedDependencies"]
    assert {"uri": "git+https://github.com/octo/model", "digest": {"gitCommit": "c" * 40}} in deps
    dataset = next(d for d in deps if d["uri"] == "synthetic://churn/seed-42/n-5000")
    assert dataset["name"] == "churn-synthetic" and dataset["annotations"]["split"] == "train"
    assert {"uri": "pkg:pypi/numpy@2.4.6", "name": "numpy"} in deps
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"].startswith("https://")
    assert run["metadata"]["invocationId"] == "https://github.com/octo/model/actions/runs/42"
    assert run["metadata"]["startedOn"] <= run["metadata"]["finishedOn"]

    # By hand, from the registry's bytes: the referrer, its envelope, the PAE signature.
    index = json.loads(
        http_get(
            registry,
            f"/v2/ml/churn/manifests/{digest.replace(':', '-')}",
            "application/vnd.oci.image.index.v1+json",
        )
    )
    [entry] = index["manifests"]
    assert entry["artifactType"] == DSSE_ENVELOPE
    assert entry["annotations"]["in-toto.io/predicate-type"] == SLSA
    manifest = json.loads(http_get(registry, f"/v2/ml/churn/manifests/{entry['digest']}"))
    assert manifest["subject"]["digest"] == digest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    raw = envelope_of(registry, "ml/churn", entry["digest"])
    document = json.loads(raw)
    payload = base64.b64decode(document["payload"])
    message = b"DSSEv1 %d %s %d %s" % (
        len(document["payloadType"]),
        document["payloadType"].encode(),
        len(payload),
        payload,
    )
    key = serialization.load_pem_public_key(public.read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(base64.b64decode(document["signatures"][0]["sig"]), message, ec.ECDSA(hashes.SHA256()))
    assert json.loads(payload) == statement
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert document["signatures"][0]["keyid"] == hashlib.sha256(der).hexdigest()

    verified = run_json(mloci, "verify-attestation", f"{repo}:1.0.0", "--key", public)
    assert verified["verified"] is True and verified["digest"] == digest
    assert verified["attestations"][0]["statement"] == statement
    assert verify_attestation(Reference.parse(f"{repo}@{digest}"), public).digest.encoded == digest[7:]
    tree = run_json(mloci, "discover", f"{repo}:1.0.0")
    assert tree["referrers"][0]["kind"] == "attestation: DSSE / in-toto"


def test_tampered_misbound_or_foreign_key_attestations_fail_with_exit_6(
    mloci: Runner, registry: Registry, bundle: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    repo = f"{registry.host}/ml/churn"
    first = push(mloci, bundle, repo)
    original = run_json(mloci, "attest", f"{repo}:1.0.0", "--key", private, "--format", "dsse")
    raw = envelope_of(registry, "ml/churn", original["attestationDigest"])
    second = push(mloci, bundle, repo, version="1.1.0")
    third = push(mloci, bundle, repo, version="1.2.0")

    # Tampered: the statement rewritten to name 1.1.0, the old signature kept.
    document = json.loads(raw)
    statement = statement_of(document)
    statement["subject"][0]["digest"] = {"sha256": second.split(":")[1]}
    document["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = json.dumps(document).encode()
    attach_blob(
        Reference.parse(f"{repo}:1.1.0"),
        Blob.of_bytes(DSSE_ENVELOPE, forged),
        artifact_type=DSSE_ENVELOPE,
    )
    tampered = mloci("verify-attestation", f"{repo}:1.1.0", "--key", public)
    assert tampered.exit_code == 6
    assert "signature does not match" in one_line_error(tampered.stderr)

    # Genuine, but about another artifact: copied next to 1.2.0 it proves nothing about 1.2.0.
    attach_blob(
        Reference.parse(f"{repo}:1.2.0"), Blob.of_bytes(DSSE_ENVELOPE, raw), artifact_type=DSSE_ENVELOPE
    )
    misbound = mloci("verify-attestation", f"{repo}:1.2.0", "--key", public)
    assert misbound.exit_code == 6
    line = one_line_error(misbound.stderr)
    assert f"no attestation for {third}" in line
    assert f"subject is {first[:19]}" in line
    with pytest.raises(IntegrityError):
        verify_attestation(Reference.parse(f"{repo}:1.2.0"), public)

    _, other_public = generate_keypair(tmp_path / "other", b"", allow_unencrypted=True)
    foreign = mloci("verify-attestation", f"{repo}:1.0.0", "--key", other_public)
    assert foreign.exit_code == 6 and "signature does not match" in foreign.stderr

    unattested = push(mloci, bundle, repo, version="1.3.0")
    none = mloci("verify-attestation", f"{repo}@{unattested}", "--key", public)
    assert none.exit_code == 6 and "no attestation" in none.stderr

    # The envelope's bytes altered in the registry's storage: the digest check catches it.
    layer = json.loads(http_get(registry, f"/v2/ml/churn/manifests/{original['attestationDigest']}"))[
        "layers"
    ][0]
    registry.blob_data_path(layer["digest"]).write_bytes(raw.replace(b'"payload":"', b'"payload":"AAAA'))
    corrupted = mloci("verify-attestation", f"{repo}:1.0.0", "--key", public)
    assert corrupted.exit_code == 6 and "tampered" in corrupted.stderr


def test_attest_options_and_errors(
    mloci: Runner, registry: Registry, bundle: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    repo = f"{registry.host}/ml/churn"
    push(mloci, bundle, repo)
    result = run_json(
        mloci,
        "attest",
        f"{repo}:1.0.0",
        "--key",
        private,
        "--started-on",
        "2026-11-23T12:00:00+01:00",
        "--builder-id",
        "https://ci.example.com/runners/7",
    )
    run = result["statement"]["predicate"]["runDetails"]
    assert run["metadata"]["startedOn"] == "2026-11-23T11:00:00Z"
    assert run["builder"] == {"id": "https://ci.example.com/runners/7", "version": {"mloci": __version__}}
    assert "invocationId" not in run["metadata"]  # no CI: nothing invented
    naive = mloci("attest", f"{repo}:1.0.0", "--key", private, "--started-on", "2026-11-23T12:00:00")
    assert naive.exit_code == 2 and "offset" in one_line_error(naive.stderr)
    wrong_key = mloci("attest", f"{repo}:1.0.0", "--key", public)
    assert wrong_key.exit_code == 2 and "not a PEM private key" in one_line_error(wrong_key.stderr)
    missing = mloci("attest", f"{repo}:9.9.9", "--key", private)
    assert missing.exit_code == 4


# -- verified pull -------------------------------------------------------------------------------


def test_pull_verified_writes_nothing_for_unsigned_artifacts_and_pulls_signed_ones(
    mloci: Runner, registry: Registry, bundle: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    repo = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, repo)
    ref = Reference.parse(f"{repo}:1.0.0")
    target = tmp_path / "out" / "model"
    blob_gets = registry.requests_matching(r'"GET /v2/ml/churn/blobs/')
    with pytest.raises(IntegrityError, match="not signed"):
        pull(ref, target, verify_key=public)
    assert not target.exists() and not target.parent.exists()
    assert registry.requests_matching(r'"GET /v2/ml/churn/blobs/') == blob_gets  # nothing downloaded

    # Signed by someone else: still refused.
    other, _ = generate_keypair(tmp_path / "other", b"", allow_unencrypted=True)
    assert mloci("sign", f"{repo}:1.0.0", "--key", other).exit_code == 0
    with pytest.raises(IntegrityError):
        pull(ref, target, verify_key=public)
    assert not target.parent.exists()

    assert mloci("sign", f"{repo}:1.0.0", "--key", private).exit_code == 0
    result = pull(ref, target, verify_key=public)
    assert str(result.digest) == digest
    assert result.verification is not None and str(result.verification.digest) == digest
    assert (target / "model.onnx").read_bytes() == (bundle / "model.onnx").read_bytes()
    assert result.to_json()["verification"]["verified"] is True


def test_pull_cli_with_verify_key(
    mloci: Runner, registry: Registry, bundle: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    from mloci.cli.pull import pull_command

    if not any(p.name == "verify_key" for p in pull_command.params):
        pytest.skip("mloci pull --verify-key is not wired into mloci/cli/pull.py yet")
    private, public = keys
    repo = f"{registry.host}/ml/churn"
    push(mloci, bundle, repo)
    target, digest_file = tmp_path / "model", tmp_path / "DIGEST"
    args = ("--verify-key", public, "-o", target, "--digest-file", digest_file)
    refused = mloci("pull", f"{repo}:1.0.0", *args)
    assert refused.exit_code == 6 and not target.exists() and not digest_file.exists()
    assert "not signed" in one_line_error(refused.stderr)
    assert mloci("sign", f"{repo}:1.0.0", "--key", private).exit_code == 0
    pulled = run_json(mloci, "pull", f"{repo}:1.0.0", *args)
    assert pulled["verification"]["verified"] is True
    assert (target / "model.onnx").is_file()
    assert digest_file.read_text() == f"{pulled['digest']}\n"


# -- policy --------------------------------------------------------------------------------------


def test_policy_require_sbom_and_provenance_passes_only_once_both_are_attached(
    mloci: Runner, registry: Registry, bundle: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, _ = keys
    repo = f"{registry.host}/ml/churn"
    push(mloci, bundle, repo)
    rules = tmp_path / "policy.yaml"
    rules.write_text("require: [sbom, provenance]\n")
    ref = Reference.parse(f"{repo}:1.0.0")

    before = policy.check(rules, ref)
    assert not before.passed
    assert [r.rule for r in before.failures] == ["require: sbom", "require: provenance"]

    assert mloci("sbom", f"{repo}:1.0.0", "--attach").exit_code == 0
    halfway = policy.check(rules, ref)
    assert [r.rule for r in halfway.failures] == ["require: provenance"]

    assert mloci("attest", f"{repo}:1.0.0", "--key", private).exit_code == 0  # a sigstore bundle
    after = policy.check(rules, ref)
    assert after.passed, after.to_json()
    details = {r.rule: r.detail for r in after.results}
    assert "application/vnd.cyclonedx+json" in details["require: sbom"]
    assert f"application/vnd.dev.sigstore.bundle.v0.3+json ({SLSA})" in details["require: provenance"]


def test_policy_require_provenance_counts_dsse_and_bundle_attestations_but_not_signatures(
    mloci: Runner, registry: Registry, bundle: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, _ = keys
    repo = f"{registry.host}/ml/churn"
    push(mloci, bundle, repo)
    dsse_only = push(mloci, bundle, repo, version="1.1.0")
    rules = tmp_path / "policy.yaml"
    rules.write_text("require: [provenance]\n")
    # An image signature is a sigstore bundle too, with cosign's sign/v1 predicate: not provenance.
    assert mloci("sign", f"{repo}:1.0.0", "--key", private).exit_code == 0
    unsigned = policy.check(rules, Reference.parse(f"{repo}:1.0.0"))
    assert [r.rule for r in unsigned.failures] == ["require: provenance"]
    assert mloci("attest", f"{repo}@{dsse_only}", "--key", private, "--format", "dsse").exit_code == 0
    details = {r.rule: r.detail for r in policy.check(rules, Reference.parse(f"{repo}:1.1.0")).results}
    assert DSSE_ENVELOPE in details["require: provenance"]

    # A bundle attached without cosign's predicateType annotation is read to find its predicate.
    from mloci.ops.attach import attach_blob
    from mloci.ops.attest import attest
    from mloci.types.blob import Blob
    from mloci.types.manifest import Descriptor

    plain = push(mloci, bundle, repo, version="1.2.0")
    attested = attest(Reference.parse(f"{repo}@{dsse_only}"), private, None, format="bundle")
    assert attested.bundle is not None
    layer = json.loads(http_get(registry, f"/v2/ml/churn/manifests/{attested.bundle.digest}"))["layers"][0]
    data = http_get(registry, f"/v2/ml/churn/blobs/{layer['digest']}", accept="*/*")
    # Its statement names 1.1.0, but presence is by predicate type (verify-attestation checks the subject).
    attach_blob(
        Reference.parse(f"{repo}@{plain}"),
        Blob(Descriptor.of_bytes(layer["mediaType"], data), data=data),
        artifact_type=layer["mediaType"],
    )
    found = {r.rule: r for r in policy.check(rules, Reference.parse(f"{repo}:1.2.0")).results}
    assert found["require: provenance"].passed and SLSA in found["require: provenance"].detail
