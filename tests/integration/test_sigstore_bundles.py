"""sigstore bundles in a real registry: mloci writes what cosign v3 writes, and verifies cosign's bundles.

distribution 2.8 (the test registry) has no referrers API, so every bundle here travels through
the referrers tag schema (``sha256-<hex>`` index), as cosign v3 falls back to on such registries.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from helpers import SHARED, Registry, Runner
from test_sbom import run_json

from mloci.ops import referrers
from mloci.store import open_store
from mloci.types import Reference
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest

DATA = SHARED / "interop" / "sigstore"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY = "application/vnd.oci.empty.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(autouse=True)
def trust_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "")
    monkeypatch.delenv("MLOCI_TRUSTED_ROOT", raising=False)


def vector(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(next(DATA.glob(f"{name}-*.json")).read_text())
    return value


def keygen(mloci: Runner, prefix: Path, *extra: str) -> Path:
    result = mloci("keygen", "--output-key-prefix", prefix, "--allow-unencrypted", *extra)
    assert result.exit_code == 0, result.stderr
    return prefix.with_name(prefix.name + ".key")


def push(mloci: Runner, bundle: Path, repo: str) -> str:
    return str(run_json(mloci, "push", bundle, repo)["digest"])


def fetch(registry: Registry, repo: str, what: str, accept: str = OCI_MANIFEST) -> bytes:
    import urllib3

    response = urllib3.request("GET", f"http://{registry.host}/v2/{repo}/{what}", headers={"Accept": accept})
    assert response.status == 200, response.data
    return bytes(response.data)


def bundles_of(registry: Registry, repo: str, digest: str) -> list[dict[str, Any]]:
    index = json.loads(
        fetch(
            registry, repo, f"manifests/{digest.replace(':', '-')}", "application/vnd.oci.image.index.v1+json"
        )
    )
    return [m for m in index["manifests"] if m.get("artifactType") == BUNDLE]


def attach_raw(registry: Registry, repo: str, subject: str, data: bytes) -> None:
    """Attach bundle bytes as a referrer of ``subject`` exactly as cosign v3 lays it out."""
    ref = Reference.parse(f"{registry.host}/{repo}")
    store = open_store(ref)
    try:
        empty = Blob.of_bytes(EMPTY, b"{}")
        layer = Blob.of_bytes(BUNDLE, data)
        for blob in (empty, layer):
            store.push_blob(ref.repository, blob)
        manifest = Manifest(
            artifact_type=BUNDLE,
            config=empty.descriptor,
            layers=[layer.descriptor],
            subject=Descriptor(media_type=OCI_MANIFEST, digest=Digest.parse(subject), size=1234),
            annotations={"dev.sigstore.bundle.content": "dsse-envelope"},
        )
        referrers.attach(store, ref, manifest)
    finally:
        store.close()


# -- what mloci writes -----------------------------------------------------------------------------


def test_sign_writes_the_bundle_cosign_v3_writes_field_by_field(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = "ml/bundled"
    digest = push(mloci, bundle, f"{registry.host}/{repo}")
    key = keygen(mloci, tmp_path / "k")
    signed = run_json(mloci, "sign", f"{registry.host}/{repo}:1.0.0", "--key", key)
    assert signed["format"] == "bundle" and signed["signatureReference"] is None

    [entry] = bundles_of(registry, repo, digest)
    manifest = json.loads(fetch(registry, repo, f"manifests/{entry['digest']}"))
    # cosign specs/BUNDLE_SPEC.md
    assert manifest["artifactType"] == BUNDLE
    assert manifest["config"]["mediaType"] == EMPTY and manifest["config"]["size"] == 2
    assert manifest["subject"]["digest"] == digest
    assert manifest["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert (
        manifest["annotations"]["dev.sigstore.bundle.predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    )
    assert "org.opencontainers.image.created" in manifest["annotations"]
    [layer] = manifest["layers"]
    assert layer["mediaType"] == BUNDLE
    assert layer["annotations"]["org.opencontainers.image.title"].endswith(".sigstore.json")
    assert entry["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"  # in the fallback index too

    mine = json.loads(fetch(registry, repo, f"blobs/{layer['digest']}"))
    cosign = json.loads(vector("02")["bundle_raw"])

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return [(k, shape(v)) for k, v in value.items()]
        if isinstance(value, list):
            return [shape(v) for v in value]
        return type(value).__name__

    assert shape(mine) == shape(cosign)  # same keys, same order, same nesting
    assert mine["mediaType"] == cosign["mediaType"]
    assert mine["dsseEnvelope"]["payloadType"] == cosign["dsseEnvelope"]["payloadType"]
    statement = json.loads(base64.b64decode(mine["dsseEnvelope"]["payload"]))
    theirs = json.loads(base64.b64decode(cosign["dsseEnvelope"]["payload"]))
    assert shape(statement) == shape(theirs)
    assert statement["_type"] == theirs["_type"] and statement["predicateType"] == theirs["predicateType"]
    assert statement["subject"] == [{"digest": {"sha256": digest.split(":")[1]}, "annotations": {}}]
    assert statement["predicate"] == theirs["predicate"] == {}
    public = serialization.load_pem_public_key(key.with_suffix(".pub").read_bytes())
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert (
        mine["verificationMaterial"]["publicKey"]["hint"]
        == base64.b64encode(hashlib.sha256(spki).digest()).decode()
    )

    # The stored bundle verifies offline, and only for this digest.
    path = tmp_path / "sig.sigstore.json"
    path.write_bytes(fetch(registry, repo, f"blobs/{layer['digest']}"))
    ok = mloci("verify-bundle", path, "--digest", digest, "--key", key.with_suffix(".pub"))
    assert ok.exit_code == 0, ok.stderr
    other = mloci("verify-bundle", path, "--digest", "sha256:" + "3" * 64, "--key", key.with_suffix(".pub"))
    assert other.exit_code == 6
    assert mloci("verify", f"{registry.host}/{repo}:1.0.0", "--key", key.with_suffix(".pub")).exit_code == 0

    again = run_json(mloci, "sign", f"{registry.host}/{repo}:1.0.0", "--key", key)
    assert again["unchanged"] is True
    assert len(bundles_of(registry, repo, digest)) == 1


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_several_signers_formats_and_key_types_verify_side_by_side(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path, algorithm: str
) -> None:
    repo = f"{registry.host}/ml/many-{algorithm}"
    digest = push(mloci, bundle, repo)
    alice = keygen(mloci, tmp_path / "alice", "--algorithm", algorithm)
    bob = keygen(mloci, tmp_path / "bob")
    carol = keygen(mloci, tmp_path / "carol")
    assert mloci("sign", f"{repo}:1.0.0", "--key", alice, "--format", "both", "-a", "by=alice").exit_code == 0
    assert mloci("sign", f"{repo}:1.0.0", "--key", bob).exit_code == 0
    for key, claim in ((alice, "by=alice"), (bob, None)):
        args = ["-a", claim] if claim else []
        result = run_json(mloci, "verify", f"{repo}:1.0.0", "--key", key.with_suffix(".pub"), *args)
        assert result["checked"] == 3  # two bundles, one legacy layer
        formats = sorted(s["format"] for s in result["signatures"])
        assert formats == (["bundle", "legacy"] if key == alice else ["bundle"])
    refused = mloci("verify", f"{repo}:1.0.0", "--key", carol.with_suffix(".pub"))
    assert refused.exit_code == 6
    assert "(3 checked)" in refused.stderr
    pulled = mloci("pull", f"{repo}:1.0.0", "-o", tmp_path / "out", "--verify-key", bob.with_suffix(".pub"))
    assert pulled.exit_code == 0, pulled.stderr
    assert (tmp_path / "out" / "manifest.json").is_file()
    assert (
        digest in run_json(mloci, "verify", f"{repo}@{digest}", "--key", bob.with_suffix(".pub"))["reference"]
    )


# -- what cosign writes, through the registry ---------------------------------------------------


def test_cosign_v3_key_bundle_attached_as_referrer_verifies_with_mloci_verify(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    v = vector("02")
    subject = "sha256:" + v["subject"]["sha256"]
    attach_raw(registry, "test/app", subject, v["bundle_raw"].encode())
    public = tmp_path / "cosign.pub"
    public.write_text(v["public_key_pem"])
    result = mloci("verify", f"{registry.host}/test/app@{subject}", "--key", public, "--json")
    assert result.exit_code == 0, result.stderr
    [signature] = json.loads(result.stdout)["signatures"]
    assert signature["format"] == "bundle" and signature["signer"].startswith("key ")
    stranger = keygen(mloci, tmp_path / "stranger").with_suffix(".pub")
    assert mloci("verify", f"{registry.host}/test/app@{subject}", "--key", stranger).exit_code == 6


def test_cosign_v3_keyless_bundle_attached_as_referrer_verifies_by_identity(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    pytest.importorskip("sigstore")
    v = vector("04")
    subject = "sha256:" + v["subject"]["sha256"]
    attach_raw(registry, "kubewarden/controller", subject, json.dumps(v["bundle"]).encode())
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(v["trusted_root"]))
    ref = f"{registry.host}/kubewarden/controller@{subject}"
    identity = ("--certificate-oidc-issuer", v["expected_issuer"], "--trusted-root", root)
    ok = mloci("verify", ref, "--certificate-identity", v["expected_identity"], *identity, "--json")
    assert ok.exit_code == 0, ok.stderr
    [signature] = json.loads(ok.stdout)["signatures"]
    assert signature["signer"] == v["expected_identity"] and signature["issuer"] == v["expected_issuer"]
    assert signature["transparencyLog"]["logIndex"] == 1261105807
    regexp = mloci(
        "verify", ref, "--certificate-identity-regexp", r"https://github\.com/kubewarden/.*", *identity
    )
    assert regexp.exit_code == 0, regexp.stderr
    wrong = mloci("verify", ref, "--certificate-identity", "https://github.com/evil/x", *identity)
    assert wrong.exit_code == 6
    assert "identity" in wrong.stderr


def test_a_bundle_attached_to_another_artifact_does_not_verify_for_it(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    v = vector("02")
    repo = f"{registry.host}/test/moved"
    digest = push(mloci, bundle, repo)
    attach_raw(registry, "test/moved", digest, v["bundle_raw"].encode())  # a real bundle, for another digest
    public = tmp_path / "cosign.pub"
    public.write_text(v["public_key_pem"])
    result = mloci("verify", f"{repo}:1.0.0", "--key", public)
    assert result.exit_code == 6
    assert f"not {digest}" in result.stderr


def test_verify_bundle_cli_exit_codes(mloci: Runner, tmp_path: Path) -> None:
    v = vector("12")
    path = tmp_path / "blob.sigstore.json"
    path.write_text(json.dumps(v["bundle"]))
    artifact = tmp_path / "sample.tar.gz"
    artifact.write_bytes(base64.b64decode(v["subject"]["bytes_b64"]))
    public = tmp_path / "cosign.pub"
    public.write_text(v["public_key_pem"])
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(v["trusted_root"]))
    ok = run_json(
        mloci, "verify-bundle", path, "--artifact", artifact, "--key", public, "--trusted-root", root
    )
    assert ok["transparencyLog"]["logIndex"] == 658931575
    assert ok["timestamps"] == ["2025-10-31T12:17:32+00:00"]  # the RFC 3161 token, verified
    human = mloci("verify-bundle", path, "--artifact", artifact, "--key", public, "--trusted-root", root)
    assert human.exit_code == 0 and "timestamped 2025-10-31T12:17:32+00:00" in human.stderr
    document = json.loads(path.read_text())
    token = document["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
    raw = bytearray(base64.b64decode(token["signedTimestamp"]))
    raw[-10] ^= 1  # inside the TSA's signature
    token["signedTimestamp"] = base64.b64encode(bytes(raw)).decode()
    tampered = tmp_path / "tampered.sigstore.json"
    tampered.write_text(json.dumps(document))
    bad = mloci("verify-bundle", tampered, "--artifact", artifact, "--key", public, "--trusted-root", root)
    assert bad.exit_code == 6 and "RFC 3161 timestamp" in bad.stderr and "Traceback" not in bad.stderr
    artifact.write_bytes(artifact.read_bytes() + b"x")
    assert mloci("verify-bundle", path, "--artifact", artifact, "--key", public).exit_code == 6
    assert mloci("verify-bundle", path, "--key", public).exit_code == 2  # no --digest/--artifact
    assert mloci("verify-bundle", path, "--artifact", artifact).exit_code == 2  # no key or identity
    missing = mloci("verify-bundle", tmp_path / "nope.json", "--artifact", artifact, "--key", public)
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


# -- attestations in bundles -------------------------------------------------------------------


def test_attest_writes_bundles_that_verify_attestation_and_verify_bundle_accept(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # no ambient git work tree in the provenance
    repo = f"{registry.host}/ml/attested"
    digest = push(mloci, bundle, repo)
    key = keygen(mloci, tmp_path / "k")
    attested = run_json(mloci, "attest", f"{repo}:1.0.0", "--key", key, "--format", "both")
    assert attested["bundle"] and attested["attestation"] != attested["bundle"]
    assert mloci("sign", f"{repo}:1.0.0", "--key", key).exit_code == 0  # a signature is no attestation
    signature = run_json(mloci, "verify", f"{repo}:1.0.0", "--key", key.with_suffix(".pub"))
    assert signature["checked"] == 1  # and an attestation bundle is no signature
    verified = run_json(mloci, "verify-attestation", f"{repo}:1.0.0", "--key", key.with_suffix(".pub"))
    assert len(verified["attestations"]) == 2
    assert {a["predicateType"] for a in verified["attestations"]} == {"https://slsa.dev/provenance/v1"}
    anything = run_json(
        mloci, "verify-attestation", f"{repo}:1.0.0", "--key", key.with_suffix(".pub"), "--type", "any"
    )
    assert len(anything["attestations"]) == 2  # the cosign/sign/v1 bundle is not counted

    [entry] = [
        m
        for m in bundles_of(registry, repo.split("/", 1)[1], digest)
        if m["annotations"].get("dev.sigstore.bundle.predicateType") == "https://slsa.dev/provenance/v1"
    ]
    manifest = json.loads(fetch(registry, "ml/attested", f"manifests/{entry['digest']}"))
    path = tmp_path / "provenance.sigstore.json"
    path.write_bytes(fetch(registry, "ml/attested", f"blobs/{manifest['layers'][0]['digest']}"))
    slsa = ("--type", "https://slsa.dev/provenance/v1")
    ok = mloci("verify-bundle", path, "--digest", digest, "--key", key.with_suffix(".pub"), *slsa)
    assert ok.exit_code == 0, ok.stderr
    other = mloci(
        "verify-bundle",
        path,
        "--digest",
        digest,
        "--key",
        key.with_suffix(".pub"),
        "--type",
        "https://spdx.dev/Document",
    )
    assert other.exit_code == 6


def test_a_keyless_slsa_bundle_from_another_client_verifies_as_an_attestation(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    pytest.importorskip("sigstore")
    v = vector("06")
    subject = "sha256:" + v["subject"]["sha256"]
    attach_raw(registry, "conformance/a", subject, json.dumps(v["bundle"]).encode())
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(v["trusted_root"]))
    ref = f"{registry.host}/conformance/a@{subject}"
    who = (
        "--certificate-identity",
        v["expected_identity"],
        "--certificate-oidc-issuer",
        v["expected_issuer"],
    )
    ok = run_json(mloci, "verify-attestation", ref, *who, "--trusted-root", root)
    assert ok["attestations"][0]["statement"]["subject"][0]["name"] == "a.txt"
    spdx = mloci(
        "verify-attestation", ref, *who, "--trusted-root", root, "--type", "https://spdx.dev/Document"
    )
    assert spdx.exit_code == 6 and "predicate type" in spdx.stderr


def test_pull_verify_identity_refuses_before_anything_is_written(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    pytest.importorskip("sigstore")
    v = vector("04")
    repo = f"{registry.host}/ml/keyless"
    digest = push(mloci, bundle, repo)
    attach_raw(
        registry, "ml/keyless", digest, json.dumps(v["bundle"]).encode()
    )  # genuine, for another digest
    key = keygen(mloci, tmp_path / "k")
    assert mloci("sign", f"{repo}:1.0.0", "--key", key).exit_code == 0  # key-based: no identity in it
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(v["trusted_root"]))
    out = tmp_path / "out"
    who = ("--verify-identity", v["expected_identity"], "--verify-issuer", v["expected_issuer"])
    refused = mloci("pull", f"{repo}:1.0.0", "-o", out, *who, "--trusted-root", root)
    assert refused.exit_code == 6, refused.stderr
    assert "(2 checked)" in refused.stderr
    assert not out.exists()
    half = mloci("pull", f"{repo}:1.0.0", "-o", out, "--verify-identity", v["expected_identity"])
    assert half.exit_code == 2 and not out.exists()


def test_policy_signature_rules_by_key_or_identity(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    from mloci.ops import policy

    v = vector("04")
    repo = f"{registry.host}/ml/governed"
    push(mloci, bundle, repo)
    key = keygen(mloci, tmp_path / "release")
    assert mloci("sign", f"{repo}:1.0.0", "--key", key).exit_code == 0
    (tmp_path / "trusted_root.json").write_text(json.dumps(v["trusted_root"]))
    identity = (
        "  identities:\n"
        f"    - identity_regexp: 'https://github\\.com/kubewarden/.*'\n"
        f"      issuer: {v['expected_issuer']}\n"
        "  trusted_root: trusted_root.json\n"
    )
    rules = tmp_path / "policy.yaml"
    ref = Reference.parse(f"{repo}:1.0.0")

    rules.write_text("signatures:\n  keys: [release.pub]\n" + identity)
    either = policy.check(rules, ref)
    assert either.passed, either.to_json()

    rules.write_text("signatures:\n  minimum: 2\n  keys: [release.pub]\n" + identity)
    both = policy.check(rules, ref)
    assert not both.passed
    [result] = both.failures
    assert "1 of 2 required signers verified" in result.detail and "kubewarden" in result.detail

    rules.write_text("signatures:\n" + identity)
    assert not policy.check(rules, ref).passed

    rules.write_text("signatures:\n  minimum: 1\n")
    with pytest.raises(Exception, match="key or identity"):
        policy.check(rules, ref)


def test_require_tlog_counts_only_key_signatures_with_a_verified_log_entry(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    v = vector("12")  # cosign sign-blob --key, logged in Rekor
    subject = "sha256:" + v["subject"]["sha256"]
    attach_raw(registry, "blobs/sample", subject, json.dumps(v["bundle"]).encode())
    public = tmp_path / "cosign.pub"
    public.write_text(v["public_key_pem"])
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(v["trusted_root"]))
    ref = f"{registry.host}/blobs/sample@{subject}"
    assert mloci("verify", ref, "--key", public).exit_code == 0
    logged = run_json(mloci, "verify", ref, "--key", public, "--require-tlog", "--trusted-root", root)
    assert logged["signatures"][0]["transparencyLog"]["logIndex"] == 658931575
    no_root = mloci("verify", ref, "--key", public, "--require-tlog")
    assert no_root.exit_code == 6 and "trusted root" in no_root.stderr
    tampered = json.loads(json.dumps(v["bundle"]))
    proof = tampered["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["hashes"] = proof["hashes"][1:]
    attach_raw(registry, "blobs/other", subject, json.dumps(tampered).encode())
    bad = mloci(
        "verify",
        f"{registry.host}/blobs/other@{subject}",
        "--key",
        public,
        "--require-tlog",
        "--trusted-root",
        root,
    )
    assert bad.exit_code == 6 and "inclusion proof" in bad.stderr


def test_discover_tells_bundle_signatures_from_bundle_attestations(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    repo = f"{registry.host}/ml/discovered"
    push(mloci, bundle, repo)
    key = keygen(mloci, tmp_path / "k")
    assert mloci("sign", f"{repo}:1.0.0", "--key", key).exit_code == 0
    assert mloci("attest", f"{repo}:1.0.0", "--key", key, "--format", "bundle").exit_code == 0
    tree = run_json(mloci, "discover", f"{repo}:1.0.0")
    assert sorted(n["kind"] for n in tree["referrers"]) == [
        "attestation: sigstore bundle (https://slsa.dev/provenance/v1)",
        "signature: sigstore bundle",
    ]


# -- keyless signing: everything up to the network call ------------------------------------------


def test_keyless_signing_checks_token_and_statement_before_any_network_call(
    mloci: Runner, registry: Registry, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jwt = pytest.importorskip("jwt")
    from sigstore.dsse import Statement

    from mloci.trust.bundle import image_signature_statement

    monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_URL", raising=False)
    repo = f"{registry.host}/ml/keyless-sign"
    digest = push(mloci, bundle, repo)
    missing = mloci("sign", f"{repo}:1.0.0", "--keyless")
    assert missing.exit_code == 2 and "no OIDC identity token" in missing.stderr
    assert "id-token: write" in missing.stderr

    monkeypatch.setenv("SIGSTORE_ID_TOKEN", "not-a-jwt-secret-value")
    malformed = mloci("sign", f"{repo}:1.0.0", "--keyless")
    assert malformed.exit_code == 2 and "not a usable OIDC identity token" in malformed.stderr
    assert "secret-value" not in malformed.stderr + malformed.stdout

    expired = jwt.encode(
        {
            "aud": "sigstore",
            "sub": "x",
            "iss": "https://token.actions.githubusercontent.com",
            "iat": 1,
            "exp": 2,
        },
        "k" * 32,
        algorithm="HS256",
    )
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", expired)
    assert mloci("sign", f"{repo}:1.0.0", "--keyless").exit_code == 2
    assert mloci("sign", f"{repo}:1.0.0", "--keyless", "--key", "x.key").exit_code == 2
    assert not bundles_of_or_none(registry, "ml/keyless-sign", digest)

    # What would be sent: the cosign/sign/v1 statement, acceptable to sigstore-python's signer.
    statement = image_signature_statement(Digest.parse(digest), {"env": "prod"}, name=repo)
    parsed = json.loads(Statement(statement)._contents)
    assert parsed["subject"][0]["name"] == repo
    assert parsed["predicateType"] == "https://sigstore.dev/cosign/sign/v1"


def bundles_of_or_none(registry: Registry, repo: str, digest: str) -> list[dict[str, Any]]:
    import urllib3

    tag = digest.replace(":", "-")
    response = urllib3.request(
        "GET",
        f"http://{registry.host}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    return bundles_of(registry, repo, digest) if response.status == 200 else []
