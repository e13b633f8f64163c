"""Keyless ``.att`` layers logged as Rekor ``intoto`` entries (0.0.1 and 0.0.2), which cosign v1/v2
``attest`` wrote: the entry must be this envelope (0.0.1: the SHA-256 of the layer's bytes, as cosign
checks; 0.0.2: the payload hash and the signature) and this certificate.

No genuine keyless ``intoto`` ``.att`` layer is available, so everything here is generated: a
throwaway Fulcio CA (tests/throwaway_pki.py) and a throwaway Rekor key that signs each SET. The
genuine ``dsse`` case is tests/unit/test_legacy_keyless_att.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
import throwaway_pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mloci.trust import Rejected
from mloci.trust.dsse import Envelope, sign_envelope
from mloci.trust.keyless import IdentityRule
from mloci.trust.legacy_keyless import BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, verify_attestation_layer

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
ISSUER = "https://oidc.example.com"
RULE = IdentityRule(identity="dana@example.com", issuer=ISSUER)
FULCIO = throwaway_pki.ca("throwaway fulcio", NOW)
SIGNER = throwaway_pki.fulcio_leaf(FULCIO, NOW, x509.RFC822Name("dana@example.com"), ISSUER)
REKOR = ec.generate_private_key(ec.SECP256R1())
SPKI = REKOR.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
LOG_ID = hashlib.sha256(SPKI).digest()
PEM = SIGNER[1].public_bytes(serialization.Encoding.PEM)
STATEMENT = {
    "_type": "https://in-toto.io/Statement/v0.1",
    "subject": [{"name": "model", "digest": {"sha256": "9" * 64}}],
    "predicateType": "https://slsa.dev/provenance/v0.2",
    "predicate": {},
}


def root() -> dict[str, Any]:
    value = throwaway_pki.fulcio_root(FULCIO)
    value["tlogs"] = [
        {
            "baseUrl": "https://rekor.example.com",
            "logId": {"keyId": base64.b64encode(LOG_ID).decode()},
            "publicKey": {"rawBytes": base64.b64encode(SPKI).decode()},
        }
    ]
    return value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sha256(data: bytes) -> dict[str, str]:
    return {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest()}


def rekor_bundle(body: dict[str, Any]) -> str:
    """cosign's ``dev.sigstore.cosign/bundle``, its SET signed by the throwaway Rekor key."""
    payload = {
        "body": b64(json.dumps(body).encode()),
        "integratedTime": int(NOW.timestamp()),
        "logID": LOG_ID.hex(),
        "logIndex": 42,
    }
    message = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps(
        {"SignedEntryTimestamp": b64(REKOR.sign(message, ec.ECDSA(hashes.SHA256()))), "Payload": payload}
    )


def intoto_v001(blob: bytes, envelope: Envelope, pem: bytes = PEM) -> dict[str, Any]:
    content = {"hash": sha256(blob), "payloadHash": sha256(envelope.payload)}
    return {"apiVersion": "0.0.1", "kind": "intoto", "spec": {"content": content, "publicKey": b64(pem)}}


def intoto_v002(
    blob: bytes, envelope: Envelope, pem: bytes = PEM, sig: bytes | None = None
) -> dict[str, Any]:
    signature = sig if sig is not None else envelope.signatures[0].sig
    logged = {
        "payloadType": envelope.payload_type,
        "signatures": [{"sig": b64(b64(signature).encode()), "publicKey": b64(pem)}],
    }
    content = {
        "envelope": logged,
        "hash": sha256(b"re-serialized by rekor"),
        "payloadHash": sha256(envelope.payload),
    }
    return {"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": content}}


def layer(body: Callable[[bytes, Envelope], dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    envelope = sign_envelope(json.dumps(STATEMENT).encode(), SIGNER[0])
    blob = envelope.to_json()
    return blob, {CERTIFICATE_ANNOTATION: PEM.decode(), BUNDLE_ANNOTATION: rekor_bundle(body(blob, envelope))}


@pytest.mark.parametrize("body", [intoto_v001, intoto_v002], ids=["intoto-0.0.1", "intoto-0.0.2"])
def test_intoto_entries_bind_the_layer(body: Callable[[bytes, Envelope], dict[str, Any]]) -> None:
    blob, annotations = layer(body)
    checked = verify_attestation_layer(blob, annotations, RULE, root())
    assert checked.signed.identity == "dana@example.com"
    assert checked.signed.log is not None and checked.signed.log.log_index == 42


OTHER_PEM = throwaway_pki.fulcio_leaf(FULCIO, NOW, x509.RFC822Name("eve@example.com"), ISSUER)[
    1
].public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (lambda blob, e: intoto_v001(blob + b" ", e), "logs another envelope"),
        (lambda blob, e: intoto_v001(blob, e, OTHER_PEM), "another certificate"),
        (lambda blob, e: intoto_v002(blob, e, OTHER_PEM), "another certificate"),
        (lambda blob, e: intoto_v002(blob, e, sig=b"\x30\x00"), "another signature"),
        (lambda blob, e: {**intoto_v002(blob, e), "apiVersion": "0.0.3"}, "is not an intoto or dsse entry"),
        (
            lambda blob, e: {"apiVersion": "0.0.1", "kind": "rekord", "spec": {}},
            "is not an intoto or dsse entry",
        ),
    ],
    ids=["v001-other-blob", "v001-other-cert", "v002-other-cert", "v002-other-sig", "v003", "rekord"],
)
def test_intoto_entries_of_something_else_fail(
    body: Callable[[bytes, Envelope], dict[str, Any]], reason: str
) -> None:
    blob, annotations = layer(body)
    with pytest.raises(Rejected, match=reason):
        verify_attestation_layer(blob, annotations, RULE, root())
