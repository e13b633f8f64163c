"""Keyless sigstore bundles for PEP 740 tests, made offline.

The certificate carries the Fulcio extensions a GitHub Actions workflow's certificate has
(issuer, source repository, build config) but is self-signed: the structure is real, the chain
is not (no test can reach Fulcio or Rekor). The transparency-log entry has every field a Rekor
v1 entry has, with made-up values.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from mloci.trust.dsse import pae

PYPI_PUBLISH_V1 = "https://docs.pypi.org/attestations/publish/v1"
REPOSITORY = "example/featurekit"
WORKFLOW = "release.yml"


def _utf8(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


def github_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    workflow_uri = f"https://github.com/{REPOSITORY}/.github/workflows/{WORKFLOW}@refs/tags/v1.0"
    fulcio = {
        "1.3.6.1.4.1.57264.1.8": "https://token.actions.githubusercontent.com",
        "1.3.6.1.4.1.57264.1.12": f"https://github.com/{REPOSITORY}",
        "1.3.6.1.4.1.57264.1.18": workflow_uri,
    }
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "sigstore-intermediate")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(workflow_uri)]), critical=True
        )
    )
    for oid, value in fulcio.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier(oid), _utf8(value)), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def keyless_bundle(
    filename: str, sha256: str, *, predicate_type: str = PYPI_PUBLISH_V1, subjects: int = 1
) -> bytes:
    """A v0.3 bundle: certificate, one tlog entry, a DSSE envelope over a statement about ``filename``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = {"name": filename, "digest": {"sha256": sha256}}
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [subject] * subjects,
        "predicateType": predicate_type,
        "predicate": None,
    }
    payload = json.dumps(statement, separators=(",", ":")).encode()
    signature = key.sign(pae("application/vnd.in-toto+json", payload), ec.ECDSA(hashes.SHA256()))
    der = github_certificate(key).public_bytes(serialization.Encoding.DER)
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    entry: dict[str, Any] = {
        "logIndex": "12345",
        "logId": {"keyId": b64(b"\x01" * 32)},
        "kindVersion": {"kind": "dsse", "version": "0.0.1"},
        "integratedTime": str(int(dt.datetime.now(dt.UTC).timestamp())),
        "inclusionPromise": {"signedEntryTimestamp": b64(b"\x02" * 70)},
        "inclusionProof": {
            "logIndex": "12345",
            "rootHash": b64(b"\x03" * 32),
            "treeSize": "12346",
            "hashes": [b64(b"\x04" * 32)],
            "checkpoint": {"envelope": "rekor.sigstore.dev - 1\n12346\nAwMD\n\n— rekor.sigstore.dev AAAA\n"},
        },
        "canonicalizedBody": b64(b'{"apiVersion":"0.0.1","kind":"dsse","spec":{}}'),
    }
    document = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"certificate": {"rawBytes": b64(der)}, "tlogEntries": [entry]},
        "dsseEnvelope": {
            "payload": b64(payload),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": b64(signature)}],
        },
    }
    return json.dumps(document).encode()
