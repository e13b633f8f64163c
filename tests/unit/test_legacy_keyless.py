"""cosign v2 keyless ``.sig`` layers: a real one verifies offline, and every changed part is refused.

The vector (tests/data/cosign-legacy-keyless, its ``source`` names the public README it comes
from) is a layer cosign v2 wrote in Google Cloud Build in 2023: a Fulcio certificate for a
service account, the chain, and a Rekor bundle (SET). It is checked against the public-good trusted
root with ``cryptography`` only: SET, logged body, certificate chain at the integrated time, SCT,
signature, identity and issuer.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import SHARED

from mloci.trust import Rejected
from mloci.trust.cosign import check_payload
from mloci.trust.keyless import IdentityRule
from mloci.trust.legacy_keyless import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    verify_layer,
)
from mloci.types.digest import Digest

VECTOR = (
    Path(__file__).parent.parent / "data" / "cosign-legacy-keyless" / "salrashid123-securebuild-bazel.json"
)
SIGNATURE = "dev.cosignproject.cosign/signature"


@pytest.fixture
def v() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(VECTOR.read_text())
    return value


@pytest.fixture
def root() -> dict[str, Any]:
    vector = json.loads(
        (SHARED / "interop/sigstore/06-conformance-keyless-dsse-intoto-v0.3.json").read_text()
    )
    value: dict[str, Any] = vector["trusted_root"]
    return value


def annotations(v: dict[str, Any]) -> dict[str, str]:
    value: dict[str, str] = dict(v["manifest"]["layers"][1]["annotations"])
    return value


def rule(v: dict[str, Any], **override: str | None) -> IdentityRule:
    return IdentityRule(
        identity=override.get("identity", v["expected_identity"]),
        issuer=override.get("issuer", v["expected_issuer"]),
        identity_regexp=override.get("identity_regexp"),
        issuer_regexp=override.get("issuer_regexp"),
    )


def flip_b64(value: str, index: int) -> str:
    data = bytearray(base64.b64decode(value))
    data[index] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


def test_real_keyless_layer_verifies(v: dict[str, Any], root: dict[str, Any]) -> None:
    payload = base64.b64decode(v["payload_b64"])
    signed = verify_layer(payload, annotations(v), rule(v), root)
    assert (signed.identity, signed.issuer) == (v["expected_identity"], v["expected_issuer"])
    assert signed.log.log_index == 18667247 and signed.log.log_url == "https://rekor.sigstore.dev"
    assert signed.log.integrated_time == datetime.datetime(2023, 4, 22, 18, 55, 42, tzinfo=datetime.UTC)
    assert check_payload(payload, Digest.parse(v["manifest_digest"]), {"key1": "value1"}).docker_reference
    with pytest.raises(Rejected, match="not this artifact"):
        check_payload(payload, Digest.parse("sha256:" + "1" * 64), {})


def test_the_chain_annotation_is_a_hint_not_a_trust_anchor(v: dict[str, Any], root: dict[str, Any]) -> None:
    payload = base64.b64decode(v["payload_b64"])
    without = annotations(v)
    del without[CHAIN_ANNOTATION]
    assert verify_layer(payload, without, rule(v), root).identity == v["expected_identity"]
    # A chain annotation naming another CA changes nothing either: the root decides.
    _, ca = _self_signed()
    forged = annotations(v)
    forged[CHAIN_ANNOTATION] = ca.public_bytes(serialization.Encoding.PEM).decode()
    assert verify_layer(payload, forged, rule(v), root).identity == v["expected_identity"]


def _bundle(a: dict[str, str]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(a[BUNDLE_ANNOTATION])
    return value


def _set_bundle(a: dict[str, str], document: dict[str, Any]) -> None:
    a[BUNDLE_ANNOTATION] = json.dumps(document)


def _change_payload(payload: bytes, a: dict[str, str]) -> bytes:
    changed = bytearray(payload)
    changed[-5] ^= 0x01
    return bytes(changed)


def _change_signature(payload: bytes, a: dict[str, str]) -> bytes:
    a[SIGNATURE] = flip_b64(a[SIGNATURE], -5)
    return payload


def _change_certificate(payload: bytes, a: dict[str, str]) -> bytes:
    cert = x509.load_pem_x509_certificate(a[CERTIFICATE_ANNOTATION].encode())
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    der[-10] ^= 0x01  # inside Fulcio's signature over the certificate
    body = base64.encodebytes(bytes(der)).decode()
    a[CERTIFICATE_ANNOTATION] = f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"
    return payload


def _change_set(payload: bytes, a: dict[str, str]) -> bytes:
    document = _bundle(a)
    document["SignedEntryTimestamp"] = flip_b64(document["SignedEntryTimestamp"], -5)
    _set_bundle(a, document)
    return payload


def _change_body(payload: bytes, a: dict[str, str]) -> bytes:
    document = _bundle(a)
    document["Payload"]["body"] = flip_b64(document["Payload"]["body"], 60)
    _set_bundle(a, document)
    return payload


def _change_integrated_time(payload: bytes, a: dict[str, str]) -> bytes:
    document = _bundle(a)
    document["Payload"]["integratedTime"] += 1
    _set_bundle(a, document)
    return payload


def _drop_bundle(payload: bytes, a: dict[str, str]) -> bytes:
    del a[BUNDLE_ANNOTATION]
    return payload


CHANGES = {
    "payload": _change_payload,
    "signature": _change_signature,
    "certificate": _change_certificate,
    "SET": _change_set,
    "logged body": _change_body,
    "integrated time": _change_integrated_time,
    "no Rekor bundle": _drop_bundle,
}


@pytest.mark.parametrize("what", list(CHANGES))
def test_one_changed_part_fails(what: str, v: dict[str, Any], root: dict[str, Any]) -> None:
    a = annotations(v)
    payload = CHANGES[what](base64.b64decode(v["payload_b64"]), a)
    with pytest.raises(Rejected) as caught:
        verify_layer(payload, a, rule(v), root)
    assert "\n" not in caught.value.reason


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"identity": "someone@example.com"}, "identity"),
        ({"issuer": "https://token.actions.githubusercontent.com"}, "issuer"),
        ({"identity": None, "identity_regexp": r"cosign@.*\.evil\.com"}, "identity"),
        ({"identity": None, "identity_regexp": "cosign@"}, "identity"),  # a full match, as cosign
    ],
)
def test_another_identity_or_issuer_fails(
    override: dict[str, str | None], reason: str, v: dict[str, Any], root: dict[str, Any]
) -> None:
    with pytest.raises(Rejected, match=reason):
        verify_layer(base64.b64decode(v["payload_b64"]), annotations(v), rule(v, **override), root)


def _self_signed() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigstore")])
    now = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=36500))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA384())
    )
    return key, cert


def _spki() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return base64.b64encode(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()


def test_another_trust_root_fails(v: dict[str, Any], root: dict[str, Any]) -> None:
    payload = base64.b64decode(v["payload_b64"])

    other_ca = copy.deepcopy(root)
    _, ca = _self_signed()
    for authority in other_ca["certificateAuthorities"]:
        der = base64.b64encode(ca.public_bytes(serialization.Encoding.DER)).decode()
        authority["certChain"] = {"certificates": [{"rawBytes": der}]}
    with pytest.raises(Rejected, match="does not chain to a Fulcio CA"):
        verify_layer(payload, annotations(v), rule(v), other_ca)

    other_rekor = copy.deepcopy(root)
    for log in other_rekor["tlogs"]:
        log["publicKey"]["rawBytes"] = _spki()
    with pytest.raises(Rejected, match="SET"):
        verify_layer(payload, annotations(v), rule(v), other_rekor)

    other_ct = copy.deepcopy(root)
    for log in other_ct["ctlogs"]:
        log["publicKey"]["rawBytes"] = _spki()
    with pytest.raises(Rejected, match="SCT"):
        verify_layer(payload, annotations(v), rule(v), other_ct)


def test_the_certificate_must_be_valid_at_the_integrated_time(
    v: dict[str, Any], root: dict[str, Any]
) -> None:
    """The CA's validity window in the root, and the leaf's own ten minutes, hold the logged time."""
    payload = base64.b64decode(v["payload_b64"])
    late = copy.deepcopy(root)
    for authority in late["certificateAuthorities"]:
        authority["validFor"] = {"start": "2024-01-01T00:00:00Z"}
    with pytest.raises(Rejected, match="no Fulcio CA of the trusted root was valid at 2023-04-22"):
        verify_layer(payload, annotations(v), rule(v), late)


def test_a_changed_certificate_does_not_chain(v: dict[str, Any], root: dict[str, Any]) -> None:
    from mloci.trust.legacy_keyless import verify_chain

    a = annotations(v)
    _change_certificate(b"", a)
    changed = x509.load_pem_x509_certificate(a[CERTIFICATE_ANNOTATION].encode())
    moment = datetime.datetime(2023, 4, 22, 18, 55, 42, tzinfo=datetime.UTC)
    with pytest.raises(Rejected, match="does not chain to a Fulcio CA"):
        verify_chain(changed, [], root, moment)
    original = x509.load_pem_x509_certificate(annotations(v)[CERTIFICATE_ANNOTATION].encode())
    assert verify_chain(original, [], root, moment)  # the intermediate comes from the root
    with pytest.raises(Rejected, match="does not chain"):  # the leaf lived ten minutes
        verify_chain(original, [], root, moment + datetime.timedelta(minutes=11))


# -- cosign v1/v2 sign-blob --bundle files (verify-bundle) -----------------------------------------

BLOB = VECTOR.parent / "sigstore-rs-sign-blob-bundle.json"


def _blob_case(
    tmp_path: Path, root: dict[str, Any], document: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    b = json.loads(BLOB.read_text())
    path = tmp_path / "artifact.bundle"
    path.write_text(json.dumps(document) if document is not None else b["bundle_raw"])
    root_path = tmp_path / "trusted_root.json"
    root_path.write_text(json.dumps(root))
    return path, root_path


def _blob_rule(root_path: Path, **override: str | None) -> Any:
    from mloci.trust.verifier import TrustRule

    b = json.loads(BLOB.read_text())
    identity = IdentityRule(
        identity=override.get("identity", b["expected_identity"]),
        issuer=override.get("issuer", b["expected_issuer"]),
    )
    return TrustRule.of(None, identity, root_path)


def test_cosign_v2_blob_bundle_verifies_with_verify_bundle(tmp_path: Path, root: dict[str, Any]) -> None:
    from mloci.trust.verifier import verify_bundle_file

    b = json.loads(BLOB.read_text())
    path, root_path = _blob_case(tmp_path, root)
    digest = Digest.parse("sha256:" + b["artifact_sha256"])
    verified = verify_bundle_file(path, _blob_rule(root_path), digest=digest).verified
    assert (verified.signer, verified.issuer) == (b["expected_identity"], b["expected_issuer"])
    assert verified.content == "message-signature" and verified.log is not None
    assert verified.log.log_index == 7810348


def _blob_signature(d: dict[str, Any]) -> None:
    d["base64Signature"] = flip_b64(d["base64Signature"], -5)


def _blob_certificate(d: dict[str, Any]) -> None:
    pem = base64.b64decode(d["cert"]).decode()
    cert = x509.load_pem_x509_certificate(pem.encode())
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    der[-10] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode()
    d["cert"] = base64.b64encode(
        f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n".encode()
    ).decode()


def _blob_set(d: dict[str, Any]) -> None:
    d["rekorBundle"]["SignedEntryTimestamp"] = flip_b64(d["rekorBundle"]["SignedEntryTimestamp"], -5)


def _blob_time(d: dict[str, Any]) -> None:
    d["rekorBundle"]["Payload"]["integratedTime"] -= 1


@pytest.mark.parametrize("change", [_blob_signature, _blob_certificate, _blob_set, _blob_time])
def test_cosign_v2_blob_bundle_fails_when_one_part_changes(
    change: Any, tmp_path: Path, root: dict[str, Any]
) -> None:
    from mloci.errors import IntegrityError
    from mloci.trust.verifier import verify_bundle_file

    b = json.loads(BLOB.read_text())
    document = json.loads(b["bundle_raw"])
    change(document)
    path, root_path = _blob_case(tmp_path, root, document)
    with pytest.raises(IntegrityError):
        verify_bundle_file(path, _blob_rule(root_path), digest=Digest.parse("sha256:" + b["artifact_sha256"]))


def test_cosign_v2_blob_bundle_refuses_another_blob_identity_or_root(
    tmp_path: Path, root: dict[str, Any]
) -> None:
    from mloci.errors import IntegrityError
    from mloci.trust.verifier import verify_bundle_file

    b = json.loads(BLOB.read_text())
    digest = Digest.parse("sha256:" + b["artifact_sha256"])
    path, root_path = _blob_case(tmp_path, root)
    with pytest.raises(IntegrityError, match="signature does not match"):
        verify_bundle_file(path, _blob_rule(root_path), digest=Digest.parse("sha256:" + "2" * 64))
    with pytest.raises(IntegrityError, match="identity"):
        verify_bundle_file(path, _blob_rule(root_path, identity="someone@example.com"), digest=digest)
    with pytest.raises(IntegrityError, match="issuer"):
        verify_bundle_file(path, _blob_rule(root_path, issuer="https://accounts.google.com"), digest=digest)
    other = copy.deepcopy(root)
    for log in other["tlogs"]:
        log["publicKey"]["rawBytes"] = _spki()
    path, root_path = _blob_case(tmp_path, other)
    with pytest.raises(IntegrityError, match="SET"):
        verify_bundle_file(path, _blob_rule(root_path), digest=digest)


def test_key_based_blob_bundle_verifies_with_the_key_only(tmp_path: Path) -> None:
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import utils

    from mloci.errors import IntegrityError
    from mloci.trust.verifier import TrustRule, verify_bundle_file

    blob = b"model weights\n"
    private = ec.generate_private_key(ec.SECP256R1())
    signature = private.sign(hashlib.sha256(blob).digest(), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    path = tmp_path / "blob.bundle"
    path.write_text(json.dumps({"base64Signature": base64.b64encode(signature).decode()}))
    artifact = tmp_path / "blob"
    artifact.write_bytes(blob)
    key = tmp_path / "k.pub"
    key.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    verified = verify_bundle_file(path, TrustRule.of(key), artifact=artifact).verified
    assert verified.signer.startswith("key ") and verified.log is None
    artifact.write_bytes(blob + b"!")
    with pytest.raises(IntegrityError, match="signature does not match"):
        verify_bundle_file(path, TrustRule.of(key), artifact=artifact)
