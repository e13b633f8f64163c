"""Real cosign v1/v2 legacy signatures and attestations in a real registry, verified by mloci.

- A cosign v2 **keyless** ``.sig`` (tests/data/cosign-legacy-keyless): the manifest cosign wrote for
  ``securebuild-bazel@sha256:5ce2d8cd…`` (a KMS key layer and a keyless layer with certificate,
  chain and Rekor bundle on the same payload), pushed under ``sha256-<hex>.sig``; ``mloci verify``
  by identity and issuer against the public-good trusted root from the shared vectors.
- Early cosign ``.att`` envelopes (shared vector 16) pushed as cosign's ``sha256-<hex>.att`` image.
- The shared key-based ``.sig`` vectors (../shared/interop/cosign).

The images themselves are not needed: a digest is what is verified, as cosign does.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import SHARED, Registry, Runner

from mloci.store import open_store
from mloci.trust.cosign import config_blob
from mloci.types import Reference
from mloci.types.blob import Blob
from mloci.types.manifest import Manifest

VECTOR = (
    Path(__file__).parent.parent / "data" / "cosign-legacy-keyless" / "salrashid123-securebuild-bazel.json"
)
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


@pytest.fixture(autouse=True)
def no_ambient_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOCI_TRUSTED_ROOT", raising=False)


@pytest.fixture
def v() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(VECTOR.read_text())
    return value


def write_root(tmp_path: Path, change: Any = None) -> Path:
    vector = json.loads(
        (SHARED / "interop/sigstore/06-conformance-keyless-dsse-intoto-v0.3.json").read_text()
    )
    root = copy.deepcopy(vector["trusted_root"])
    if change is not None:
        change(root)
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps(root))
    return path


def push_signatures(
    registry: Registry, repo: str, subject: str, layers: list[tuple[bytes, dict[str, str]]]
) -> None:
    """The ``.sig`` manifest cosign writes: one simple-signing layer per (payload, annotations)."""
    ref = Reference.parse(f"{registry.host}/{repo}")
    store = open_store(ref)
    try:
        descriptors = []
        for payload, annotations in layers:
            blob = Blob.of_bytes(SIMPLE_SIGNING, payload)
            store.push_blob(ref.repository, blob)
            descriptors.append(blob.descriptor.model_copy(update={"annotations": annotations}))
        config = Blob.of_bytes(OCI_CONFIG, config_blob(descriptors))
        store.push_blob(ref.repository, config)
        manifest = Manifest(media_type=OCI_MANIFEST, config=config.descriptor, layers=descriptors)
        tag = subject.replace(":", "-") + ".sig"
        store.push_manifest(ref.with_tag(tag), manifest.to_json(), OCI_MANIFEST)
    finally:
        store.close()


def layers_of(v: dict[str, Any]) -> list[tuple[bytes, dict[str, str]]]:
    payload = base64.b64decode(v["payload_b64"])
    return [(payload, dict(layer["annotations"])) for layer in v["manifest"]["layers"]]


def test_real_cosign_v2_keyless_signature_verifies_by_identity(
    mloci: Runner, registry: Registry, v: dict[str, Any], tmp_path: Path
) -> None:
    subject = v["manifest_digest"]
    push_signatures(registry, "cosign-test/securebuild-bazel", subject, layers_of(v))
    ref = f"{registry.host}/cosign-test/securebuild-bazel@{subject}"
    root = write_root(tmp_path)
    who = ("--certificate-oidc-issuer", v["expected_issuer"], "--trusted-root", root)

    ok = mloci(
        "verify", ref, "--certificate-identity", v["expected_identity"], *who, "-a", "key1=value1", "--json"
    )
    assert ok.exit_code == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["checked"] == 2  # the KMS layer is checked and does not count for an identity
    [signature] = result["signatures"]
    assert signature["format"] == "legacy" and signature["signer"] == v["expected_identity"]
    assert signature["issuer"] == "https://accounts.google.com"
    assert signature["transparencyLog"]["logIndex"] == 18667247
    assert signature["annotations"] == {"key1": "value1"}

    regexp = mloci(
        "verify", ref, "--certificate-identity-regexp", r"cosign@.*\.iam\.gserviceaccount\.com", *who
    )
    assert regexp.exit_code == 0, regexp.stderr
    for wrong in (
        ("--certificate-identity", "someone@example.com", *who),
        ("--certificate-identity", v["expected_identity"], "--certificate-oidc-issuer", "https://github.com/login/oauth",
         "--trusted-root", root),
    ):  # fmt: skip
        refused = mloci("verify", ref, *wrong)
        assert refused.exit_code == 6 and ("identity" in refused.stderr or "issuer" in refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    unsigned_claim = mloci(
        "verify", ref, "--certificate-identity", v["expected_identity"], *who, "-a", "key1=x"
    )
    assert unsigned_claim.exit_code == 6


def test_changed_keyless_signatures_or_another_root_fail_with_exit_6(
    mloci: Runner, registry: Registry, v: dict[str, Any], tmp_path: Path
) -> None:
    subject = v["manifest_digest"]
    payload, keyless = layers_of(v)[1]
    identity = (
        "--certificate-identity",
        v["expected_identity"],
        "--certificate-oidc-issuer",
        v["expected_issuer"],
    )

    changed = bytearray(payload)
    changed[-5] ^= 0x01  # a payload rewritten in the registry, the annotations kept
    push_signatures(registry, "cosign-test/tampered", subject, [(bytes(changed), keyless)])
    ref = f"{registry.host}/cosign-test/tampered@{subject}"
    tampered = mloci("verify", ref, *identity, "--trusted-root", write_root(tmp_path))
    assert tampered.exit_code == 6 and "signature does not match" in tampered.stderr

    other = "sha256:" + "7" * 64  # the same signature under another artifact's tag
    push_signatures(registry, "cosign-test/moved", other, [(payload, keyless)])
    moved = mloci(
        "verify",
        f"{registry.host}/cosign-test/moved@{other}",
        *identity,
        "--trusted-root",
        write_root(tmp_path),
    )
    assert moved.exit_code == 6 and "not this artifact" in moved.stderr

    def other_rekor(root: dict[str, Any]) -> None:
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        for log in root["tlogs"]:
            log["publicKey"]["rawBytes"] = base64.b64encode(der).decode()

    push_signatures(registry, "cosign-test/good", subject, [(payload, keyless)])
    good = f"{registry.host}/cosign-test/good@{subject}"
    foreign = mloci("verify", good, *identity, "--trusted-root", write_root(tmp_path, other_rekor))
    assert foreign.exit_code == 6 and "SET" in foreign.stderr


def test_a_key_still_verifies_the_key_layer_and_not_the_keyless_one(
    mloci: Runner, registry: Registry, v: dict[str, Any], tmp_path: Path
) -> None:
    """With --key, a keyless layer is just a layer whose signature this key did not make."""
    subject = v["manifest_digest"]
    push_signatures(registry, "cosign-test/keyed", subject, layers_of(v)[1:])
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    public = tmp_path / "stranger.pub"
    public.write_bytes(
        stranger.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    result = mloci("verify", f"{registry.host}/cosign-test/keyed@{subject}", "--key", public)
    assert result.exit_code == 6 and "signature does not match" in result.stderr


# -- cosign v1/v2 legacy .att attestations ----------------------------------------------------------


def push_attestations(
    registry: Registry,
    repo: str,
    subject: str,
    envelopes: list[bytes],
    annotations: dict[str, str] | None = None,
) -> None:
    """cosign's ``sha256-<hex>.att`` image: one DSSE envelope layer per attestation."""
    ref = Reference.parse(f"{registry.host}/{repo}")
    store = open_store(ref)
    try:
        descriptors = []
        for data in envelopes:
            blob = Blob.of_bytes("application/vnd.dsse.envelope.v1+json", data)
            store.push_blob(ref.repository, blob)
            descriptors.append(blob.descriptor.model_copy(update={"annotations": annotations}))
        config = Blob.of_bytes(OCI_CONFIG, config_blob(descriptors))
        store.push_blob(ref.repository, config)
        manifest = Manifest(media_type=OCI_MANIFEST, config=config.descriptor, layers=descriptors)
        store.push_manifest(
            ref.with_tag(subject.replace(":", "-") + ".att"), manifest.to_json(), OCI_MANIFEST
        )
    finally:
        store.close()


def test_real_cosign_legacy_att_envelopes_verify_in_the_registry(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    v = json.loads(
        (SHARED / "interop/sigstore/16-cosign-legacy-att-keyed-dsse-envelopes-kyverno.json").read_text()
    )
    subject = "sha256:" + v["subject"]["sha256"]
    envelopes = [raw.encode() for raw in v["dsse_envelopes_raw"]]
    push_attestations(registry, "jimbugwadia/pause2", subject, envelopes)
    public = tmp_path / "cosign.pub"
    public.write_text(v["public_key_pem"])
    ref = f"{registry.host}/jimbugwadia/pause2@{subject}"

    review = mloci(
        "verify-attestation", ref, "--key", public, "--type", "https://example.com/CodeReview/v1", "--json"
    )
    assert review.exit_code == 0, review.stderr
    found = json.loads(review.stdout)
    assert found["checked"] == 3 and len(found["attestations"]) == 2
    every = mloci("verify-attestation", ref, "--key", public, "--type", "any", "--json")
    assert every.exit_code == 0 and len(json.loads(every.stdout)["attestations"]) == 3
    slsa = mloci("verify-attestation", ref, "--key", public)  # the default type: SLSA provenance
    assert slsa.exit_code == 6 and "predicate type" in slsa.stderr

    # One changed payload byte in the registry's copy; the same envelopes under another digest.
    document = json.loads(envelopes[0])
    payload = bytearray(base64.b64decode(document["payload"]))
    payload[-3] ^= 0x01
    document["payload"] = base64.b64encode(bytes(payload)).decode()
    push_attestations(registry, "jimbugwadia/tampered", subject, [json.dumps(document).encode()])
    tampered = mloci("verify-attestation", f"{registry.host}/jimbugwadia/tampered@{subject}", "--key", public,
                     "--type", "any")  # fmt: skip
    assert tampered.exit_code == 6 and "signature does not match" in tampered.stderr
    other = "sha256:" + "5" * 64
    push_attestations(registry, "jimbugwadia/moved", other, envelopes)
    moved = mloci(
        "verify-attestation", f"{registry.host}/jimbugwadia/moved@{other}", "--key", public, "--type", "any"
    )
    assert moved.exit_code == 6 and "subject" in moved.stderr
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "stranger.pub").write_bytes(
        stranger.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    foreign = mloci("verify-attestation", ref, "--key", tmp_path / "stranger.pub", "--type", "any")
    assert foreign.exit_code == 6


def test_keyless_cosign_att_layer_verifies_by_identity(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    """A keyless ``.att`` layer (certificate and Rekor bundle annotations) verifies by identity.

    Assembled from the genuine parts of shared vector 04 (no cosign-written keyless ``.att`` is
    available; tests/unit/test_legacy_keyless_att.py says how): before, mloci verified ``.att``
    layers with a key only and reported this one as no attestation.
    """
    v = json.loads(
        (SHARED / "interop/sigstore/04-cosign-v3-image-sign-keyless-dsse-kubewarden.json").read_text()
    )
    material = v["bundle"]["verificationMaterial"]
    entry = material["tlogEntries"][0]
    promise = {
        "body": entry["canonicalizedBody"],
        "integratedTime": int(entry["integratedTime"]),
        "logIndex": int(entry["logIndex"]),
        "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
    }
    certificate = x509.load_der_x509_certificate(base64.b64decode(material["certificate"]["rawBytes"]))
    annotations = {
        "dev.sigstore.cosign/certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "dev.sigstore.cosign/bundle": json.dumps(
            {"SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"], "Payload": promise}
        ),
    }
    subject = "sha256:" + v["subject"]["sha256"]
    envelope = json.dumps(v["bundle"]["dsseEnvelope"]).encode()
    push_attestations(registry, "kubewarden/controller", subject, [envelope], annotations)
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(v["trusted_root"]))
    ref = f"{registry.host}/kubewarden/controller@{subject}"
    who = ("--certificate-oidc-issuer", v["expected_issuer"], "--trusted-root", root)
    kind = ("--type", "https://sigstore.dev/cosign/sign/v1")

    ok = mloci(
        "verify-attestation", ref, "--certificate-identity", v["expected_identity"], *who, *kind, "--json"
    )
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["attestations"][0]["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    wrong = mloci("verify-attestation", ref, "--certificate-identity", "someone@example.com", *who, *kind)
    assert wrong.exit_code == 6 and "someone@example.com" in wrong.stderr
    assert "verify with the identity and issuer its certificate names" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr
    moved = "sha256:" + "6" * 64
    push_attestations(registry, "kubewarden/moved", moved, [envelope], annotations)
    elsewhere = mloci("verify-attestation", f"{registry.host}/kubewarden/moved@{moved}",
                      "--certificate-identity", v["expected_identity"], *who, *kind)  # fmt: skip
    assert elsewhere.exit_code == 6 and "subject" in elsewhere.stderr


# -- cosign legacy key-based .sig vectors ---------------------------------------------------------


@pytest.mark.parametrize("name", ["bleala-postfix-key.json", "sigstore-rs-busybox-key.json"])
def test_real_cosign_key_signatures_verify_in_the_registry(
    mloci: Runner, registry: Registry, tmp_path: Path, name: str
) -> None:
    v = json.loads((SHARED / "interop/cosign" / name).read_text())
    payload = base64.b64decode(v["payload_b64"])
    subject = v["manifest_digest"]
    annotations = {"dev.cosignproject.cosign/signature": v["signature_b64"]}
    push_signatures(registry, "cosign/real", subject, [(payload, annotations)])
    public = tmp_path / "cosign.pub"
    public.write_text(v["public_key_pem"])
    ok = mloci("verify", f"{registry.host}/cosign/real@{subject}", "--key", public, "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["signatures"][0]["payloadDigest"] == v["layer_digest"]

    changed = bytearray(payload)
    changed[-3] ^= 0x01
    push_signatures(registry, "cosign/changed", subject, [(bytes(changed), annotations)])
    assert mloci("verify", f"{registry.host}/cosign/changed@{subject}", "--key", public).exit_code == 6
    other = "sha256:" + "6" * 64
    push_signatures(registry, "cosign/moved", other, [(payload, annotations)])
    moved = mloci("verify", f"{registry.host}/cosign/moved@{other}", "--key", public)
    assert moved.exit_code == 6 and "not this artifact" in moved.stderr


# -- a throwaway Fulcio CA and TSA: RFC 3161 timestamps on .att layers, username identities ---------


def _openssl_timestamp(
    tmp_path: Path, data: bytes, tsa: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
) -> str:
    """An RFC 3161 response over ``data`` from the throwaway TSA, made by ``openssl ts -reply``."""
    import subprocess

    work = tmp_path / "tsa"
    work.mkdir(exist_ok=True)
    (work / "data").write_bytes(data)
    (work / "tsa.pem").write_bytes(tsa[1].public_bytes(serialization.Encoding.PEM))
    (work / "tsa.key").write_bytes(
        tsa[0].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (work / "serial").write_text("01\n")
    (work / "ts.cnf").write_text(
        "[tsa]\ndefault_tsa = tsa_config\n[tsa_config]\nserial = ./serial\nsigner_digest = sha256\n"
        "default_policy = 1.2.3.4.1\ndigests = sha256\ness_cert_id_alg = sha256\n"
    )
    for command in (
        ["openssl", "ts", "-query", "-data", "data", "-sha256", "-cert", "-out", "req.tsq"],
        ["openssl", "ts", "-reply", "-queryfile", "req.tsq", "-signer", "tsa.pem", "-inkey", "tsa.key",
         "-config", "ts.cnf", "-out", "resp.tsr"],
    ):  # fmt: skip
        subprocess.run(command, cwd=work, check=True, capture_output=True)
    return base64.b64encode((work / "resp.tsr").read_bytes()).decode()


def test_keyless_att_layer_with_only_a_timestamp_and_a_username_identity(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    """A keyless ``.att`` layer placed in time by an RFC 3161 timestamp only, signed by a Fulcio
    username identity (SAN otherName 1.3.6.1.4.1.57264.1.7).

    All material is generated here (no genuine layer of this kind is available): a throwaway
    Fulcio CA and a throwaway TSA whose timestamp ``openssl ts`` signs; the trusted root lists no
    CT log, so no SCT is required. cosign timestamps an ``.att`` layer's bytes.
    """
    import datetime

    from cryptography.x509.oid import ExtendedKeyUsageOID
    from throwaway_pki import USERNAME_SAN, ca, der_b64, fulcio_leaf, fulcio_root, issued, utf8_string

    from mloci.trust.dsse import sign_envelope

    now = datetime.datetime.now(datetime.UTC)
    fulcio, tsa_root = ca("throwaway fulcio", now), ca("throwaway tsa root", now)
    tsa = issued(tsa_root, now, ExtendedKeyUsageOID.TIME_STAMPING)
    username = x509.OtherName(USERNAME_SAN, utf8_string("alice!example.com"))
    signer = fulcio_leaf(fulcio, now, username, "https://oidc.example.com")
    subject = "sha256:" + "7" * 64
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"sha256": "7" * 64}}],
        "predicateType": "https://example.com/review/v1",
        "predicate": {"ok": True},
    }
    blob = sign_envelope(json.dumps(statement).encode(), signer[0]).to_json()
    annotations = {
        "dev.sigstore.cosign/certificate": signer[1].public_bytes(serialization.Encoding.PEM).decode(),
        "dev.sigstore.cosign/rfc3161timestamp": json.dumps(
            {"SignedRFC3161Timestamp": _openssl_timestamp(tmp_path, blob, tsa)}
        ),
    }
    root = tmp_path / "trusted_root.json"
    tsa_chain = [{"rawBytes": der_b64(c)} for c in (tsa[1], tsa_root[1])]
    trusted = fulcio_root(fulcio)
    trusted["timestampAuthorities"] = [
        {"subject": {"commonName": "throwaway tsa"}, "certChain": {"certificates": tsa_chain}}
    ]
    root.write_text(json.dumps(trusted))
    push_attestations(registry, "throwaway/model", subject, [blob], annotations)
    ref = f"{registry.host}/throwaway/model@{subject}"
    common = ("--certificate-oidc-issuer", "https://oidc.example.com", "--trusted-root", root,
              "--type", "https://example.com/review/v1")  # fmt: skip

    exact = mloci("verify-attestation", ref, "--certificate-identity", "alice!example.com", *common, "--json")
    assert exact.exit_code == 0, exact.stderr
    assert json.loads(exact.stdout)["attestations"][0]["statement"]["predicate"] == {"ok": True}
    regexp = mloci("verify-attestation", ref, "--certificate-identity-regexp", r"alice!.*\.com", *common)
    assert regexp.exit_code == 0, regexp.stderr
    bob = mloci("verify-attestation", ref, "--certificate-identity", "bob!example.com", *common)
    assert (
        bob.exit_code == 6
        and "alice!example.com does not match the required identity bob!example.com" in bob.stderr
    )

    # The same timestamp on another envelope (one payload byte changed, re-signed) does not count.
    other = sign_envelope(json.dumps({**statement, "predicate": {"ok": False}}).encode(), signer[0]).to_json()
    push_attestations(registry, "throwaway/other", subject, [other], annotations)
    moved = mloci("verify-attestation", f"{registry.host}/throwaway/other@{subject}",
                  "--certificate-identity", "alice!example.com", *common)  # fmt: skip
    assert moved.exit_code == 6 and "RFC 3161" in moved.stderr, moved.stderr
    assert len(moved.stderr.strip().splitlines()) == 1


def test_keyless_sig_layer_with_only_a_timestamp_verifies(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    """cosign ``sign --timestamp-server-url`` without a Rekor upload: the ``.sig`` layer's
    ``dev.sigstore.cosign/rfc3161timestamp`` (over the raw signature bytes) places the certificate
    in time. Throwaway Fulcio CA and TSA (``openssl ts``), as the ``.att`` test above."""
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID
    from throwaway_pki import ca, der_b64, fulcio_leaf, fulcio_root, issued

    from mloci.trust.cosign import simple_signing_payload
    from mloci.types.digest import Digest

    now = datetime.datetime.now(datetime.UTC)
    fulcio, tsa_root = ca("throwaway fulcio", now), ca("throwaway tsa root", now)
    tsa = issued(tsa_root, now, ExtendedKeyUsageOID.TIME_STAMPING)
    signer = fulcio_leaf(fulcio, now, x509.RFC822Name("carol@example.com"), "https://oidc.example.com")
    subject = "sha256:" + "8" * 64
    payload = simple_signing_payload(f"{registry.host}/throwaway/image", Digest.parse(subject), {})
    signature = signer[0].sign(payload, ec.ECDSA(hashes.SHA256()))
    annotations = {
        "dev.cosignproject.cosign/signature": base64.b64encode(signature).decode(),
        "dev.sigstore.cosign/certificate": signer[1].public_bytes(serialization.Encoding.PEM).decode(),
        "dev.sigstore.cosign/rfc3161timestamp": json.dumps(
            {"SignedRFC3161Timestamp": _openssl_timestamp(tmp_path, signature, tsa)}
        ),
    }
    trusted = fulcio_root(fulcio)
    tsa_chain = [{"rawBytes": der_b64(c)} for c in (tsa[1], tsa_root[1])]
    trusted["timestampAuthorities"] = [{"certChain": {"certificates": tsa_chain}}]
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(trusted))
    push_signatures(registry, "throwaway/image", subject, [(payload, annotations)])
    ref = f"{registry.host}/throwaway/image@{subject}"
    who = ("--certificate-oidc-issuer", "https://oidc.example.com", "--trusted-root", root)

    ok = mloci("verify", ref, "--certificate-identity", "carol@example.com", *who, "--json")
    assert ok.exit_code == 0, ok.stderr
    [verified] = json.loads(ok.stdout)["signatures"]
    assert verified["signer"] == "carol@example.com" and verified["transparencyLog"] is None
    del trusted["timestampAuthorities"]
    root.write_text(json.dumps(trusted))
    no_tsa = mloci("verify", ref, "--certificate-identity", "carol@example.com", *who)
    assert no_tsa.exit_code == 6 and "lists no timestamp authority" in no_tsa.stderr, no_tsa.stderr
