"""cosign v1/v2 keyless ``.att`` layers, and ``.sig`` layers placed in time by an RFC 3161 timestamp only.

No genuine cosign-written keyless ``.att`` layer or timestamp-only ``.sig`` layer is available
(../shared/interop/sigstore/README.md lists key-based ``.att`` envelopes only). These layers are
**assembled from the genuine parts** of shared vector 04 (a cosign v3 keyless signature from GitHub
Actions): its DSSE envelope, Fulcio certificate, Rekor ``dsse`` entry and SET, and its RFC 3161
timestamp from the public-good TSA, in the annotations cosign v2 writes
(``dev.sigstore.cosign/certificate``, ``/bundle``, ``/rfc3161timestamp``). Nothing is re-signed:
every signature checked is the one Fulcio, Rekor, the TSA and the signer made.

- ``.att``: the layer blob is the envelope (compact JSON); the Rekor entry binds it through payload
  hash, signature and certificate.
- ``.sig`` with a timestamp only: cosign timestamps the raw signature bytes; the "payload" here is
  the envelope's PAE (what the signature covers), so the simple-signing payload check, which is
  the caller's, is not part of these tests.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from helpers import SHARED

from mloci.trust import Rejected
from mloci.trust.dsse import pae
from mloci.trust.intoto import COSIGN_SIGN_V1, check_statement
from mloci.trust.keyless import IdentityRule
from mloci.trust.legacy_keyless import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    TIMESTAMP_ANNOTATION,
    verify_attestation_layer,
    verify_layer,
)
from mloci.types.digest import Digest

SIGNATURE = "dev.cosignproject.cosign/signature"
V = json.loads((SHARED / "interop/sigstore/04-cosign-v3-image-sign-keyless-dsse-kubewarden.json").read_text())
MATERIAL = V["bundle"]["verificationMaterial"]
ENTRY = MATERIAL["tlogEntries"][0]
ENVELOPE: dict[str, Any] = V["bundle"]["dsseEnvelope"]
TIMESTAMP = MATERIAL["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"]
SUBJECT = Digest.parse("sha256:" + V["subject"]["sha256"])


def rule(**override: str | None) -> IdentityRule:
    return IdentityRule(
        identity=override.get("identity", V["expected_identity"]),
        issuer=override.get("issuer", V["expected_issuer"]),
        identity_regexp=override.get("identity_regexp"),
    )


def root() -> dict[str, Any]:
    value: dict[str, Any] = copy.deepcopy(V["trusted_root"])
    return value


def certificate_pem() -> str:
    der = base64.b64decode(MATERIAL["certificate"]["rawBytes"])
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


def rekor_bundle(**payload: Any) -> str:
    """cosign's ``dev.sigstore.cosign/bundle`` from the entry's genuine SET and body."""
    value = {
        "body": ENTRY["canonicalizedBody"],
        "integratedTime": int(ENTRY["integratedTime"]),
        "logIndex": int(ENTRY["logIndex"]),
        "logID": base64.b64decode(ENTRY["logId"]["keyId"]).hex(),
        **payload,
    }
    return json.dumps(
        {"SignedEntryTimestamp": ENTRY["inclusionPromise"]["signedEntryTimestamp"], "Payload": value}
    )


def att_layer(envelope: dict[str, Any] | None = None) -> tuple[bytes, dict[str, str]]:
    blob = json.dumps(envelope or ENVELOPE, separators=(",", ":")).encode()
    return blob, {CERTIFICATE_ANNOTATION: certificate_pem(), BUNDLE_ANNOTATION: rekor_bundle()}


def sig_layer(timestamp: str = TIMESTAMP) -> tuple[bytes, dict[str, str]]:
    payload = pae(ENVELOPE["payloadType"], base64.b64decode(ENVELOPE["payload"]))
    annotations = {
        CERTIFICATE_ANNOTATION: certificate_pem(),
        SIGNATURE: ENVELOPE["signatures"][0]["sig"],
        TIMESTAMP_ANNOTATION: json.dumps({"SignedRFC3161Timestamp": timestamp}),
    }
    return payload, annotations


def flip_b64(value: str, index: int) -> str:
    data = bytearray(base64.b64decode(value))
    data[index] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


# -- .att -----------------------------------------------------------------------------------------


def test_keyless_att_layer_verifies_and_its_statement_names_the_image() -> None:
    blob, annotations = att_layer()
    checked = verify_attestation_layer(blob, annotations, rule(), root())
    assert (checked.signed.identity, checked.signed.issuer) == (V["expected_identity"], V["expected_issuer"])
    assert checked.signed.log is not None and checked.signed.log.log_index == int(ENTRY["logIndex"])
    envelope = checked.envelope
    kind, _ = check_statement(envelope.payload_type, envelope.payload, SUBJECT, COSIGN_SIGN_V1, legacy=True)
    assert kind == COSIGN_SIGN_V1
    regexp = rule(identity=None, identity_regexp=r"https://github\.com/kubewarden/.*")
    assert (
        verify_attestation_layer(blob, annotations, regexp, root()).signed.identity == V["expected_identity"]
    )


def _payload_byte(blob: bytes, a: dict[str, str]) -> bytes:
    document = json.loads(blob)
    document["payload"] = flip_b64(document["payload"], 40)
    return json.dumps(document).encode()


def _signature_byte(blob: bytes, a: dict[str, str]) -> bytes:
    document = json.loads(blob)
    document["signatures"][0]["sig"] = flip_b64(document["signatures"][0]["sig"], -5)
    return json.dumps(document).encode()


def _set_byte(blob: bytes, a: dict[str, str]) -> bytes:
    document = json.loads(a[BUNDLE_ANNOTATION])
    document["SignedEntryTimestamp"] = flip_b64(document["SignedEntryTimestamp"], -5)
    a[BUNDLE_ANNOTATION] = json.dumps(document)
    return blob


def _integrated_time(blob: bytes, a: dict[str, str]) -> bytes:
    a[BUNDLE_ANNOTATION] = rekor_bundle(integratedTime=int(ENTRY["integratedTime"]) + 1)
    return blob


def _no_time(blob: bytes, a: dict[str, str]) -> bytes:
    del a[BUNDLE_ANNOTATION]
    return blob


def _not_pem(blob: bytes, a: dict[str, str]) -> bytes:
    a[CERTIFICATE_ANNOTATION] = "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"
    return blob


def _not_envelope(blob: bytes, a: dict[str, str]) -> bytes:
    return b'{"payload": 3}'


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_payload_byte, "signature does not match"),
        (_signature_byte, "signature does not match"),
        (_set_byte, "SET"),
        (_integrated_time, "SET"),
        (_no_time, "nothing places the short-lived certificate in time"),
        (_not_pem, "not a PEM X.509 certificate"),
        (_not_envelope, "not a DSSE envelope"),
    ],
)
def test_keyless_att_layer_fails_when_one_part_changes(change: Any, reason: str) -> None:
    blob, annotations = att_layer()
    blob = change(blob, annotations)
    with pytest.raises(Rejected, match=reason) as caught:
        verify_attestation_layer(blob, annotations, rule(), root())
    assert "\n" not in caught.value.reason


def test_keyless_att_layer_must_be_the_logged_signature() -> None:
    """A second, valid-looking signature does not help: the log binds the one it logged."""
    blob, annotations = att_layer()
    body = json.loads(base64.b64decode(ENTRY["canonicalizedBody"]))
    body["spec"]["payloadHash"]["value"] = "0" * 64
    other = base64.b64encode(json.dumps(body).encode()).decode()
    annotations[BUNDLE_ANNOTATION] = rekor_bundle(body=other)
    with pytest.raises(Rejected, match="SET"):  # the SET signs the genuine body only
        verify_attestation_layer(blob, annotations, rule(), root())


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"identity": "https://github.com/someone/else/.github/workflows/x.yml@refs/heads/main"}, "identity"),
        ({"issuer": "https://accounts.google.com"}, "issuer"),
    ],
)
def test_keyless_att_layer_of_another_identity_fails(override: dict[str, str], reason: str) -> None:
    blob, annotations = att_layer()
    with pytest.raises(Rejected, match=reason):
        verify_attestation_layer(blob, annotations, rule(**override), root())


def test_keyless_att_layer_with_another_rekor_or_fulcio_fails() -> None:
    blob, annotations = att_layer()
    other_rekor = root()
    other_rekor["tlogs"] = []
    with pytest.raises(Rejected, match="not in the trusted root"):
        verify_attestation_layer(blob, annotations, rule(), other_rekor)
    late_ca = root()
    for authority in late_ca["certificateAuthorities"]:
        authority["validFor"] = {"start": "2030-01-01T00:00:00Z"}
    with pytest.raises(Rejected, match="no Fulcio CA"):
        verify_attestation_layer(blob, annotations, rule(), late_ca)


# -- .sig with an RFC 3161 timestamp and no Rekor bundle -------------------------------------------


def test_sig_layer_with_only_a_timestamp_verifies() -> None:
    payload, annotations = sig_layer()
    signed = verify_layer(payload, annotations, rule(), root())
    assert signed.log is None and len(signed.timestamps) == 1
    assert signed.timestamps[0].isoformat().startswith("2026-04-09T07:23")
    assert signed.identity == V["expected_identity"]


def test_sig_layer_timestamp_must_verify_with_a_tsa_of_the_root() -> None:
    payload, annotations = sig_layer(flip_b64(TIMESTAMP, -20))
    with pytest.raises(Rejected, match="RFC 3161"):
        verify_layer(payload, annotations, rule(), root())
    no_tsa = root()
    no_tsa["timestampAuthorities"] = []
    with pytest.raises(Rejected, match="lists no timestamp authority"):
        verify_layer(*sig_layer(), rule(), no_tsa)
    payload, annotations = sig_layer()
    annotations[TIMESTAMP_ANNOTATION] = json.dumps({"SignedRFC3161Timestamp": 5})
    with pytest.raises(Rejected, match="no base64 SignedRFC3161Timestamp"):
        verify_layer(payload, annotations, rule(), root())


def test_sig_layer_timestamp_of_another_signature_fails() -> None:
    """The timestamp covers the signature bytes: over an .att blob, it does not count (cosign's rule)."""
    blob, annotations = att_layer()
    del annotations[BUNDLE_ANNOTATION]
    annotations[TIMESTAMP_ANNOTATION] = json.dumps({"SignedRFC3161Timestamp": TIMESTAMP})
    with pytest.raises(Rejected, match="another signature"):
        verify_attestation_layer(blob, annotations, rule(), root())


def test_sig_layer_certificate_must_be_valid_at_the_timestamp() -> None:
    late_ca = root()
    for authority in late_ca["certificateAuthorities"]:
        authority["validFor"] = {"start": "2030-01-01T00:00:00Z"}
    with pytest.raises(Rejected, match="no Fulcio CA of the trusted root was valid at 2026-04-09"):
        verify_layer(*sig_layer(), rule(), late_ca)


def test_sct_is_required_when_the_root_lists_ct_logs() -> None:
    other_ct = root()
    for log in other_ct["ctlogs"]:
        log["logId"]["keyId"] = base64.b64encode(b"\x00" * 32).decode()
    with pytest.raises(Rejected, match="SCT"):
        verify_layer(*sig_layer(), rule(), other_ct)
