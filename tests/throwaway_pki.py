"""A throwaway Fulcio-like CA and timestamp authority for keyless tests, generated per test run.

Used where no genuine material of a kind exists (a Fulcio username identity, an RFC 3161
timestamp over a cosign ``.att`` layer): the certificates have the shape Fulcio and a TSA issue,
but nothing here is a "genuine" vector.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

KeyPair = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
USERNAME_SAN = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def utf8_string(text: str) -> bytes:
    """A short DER UTF8String (what Fulcio's extensions and username SAN hold)."""
    data = text.encode()
    assert len(data) < 0x80
    return bytes([0x0C, len(data)]) + data


def ca(common_name: str, now: dt.datetime) -> KeyPair:
    """A self-signed CA valid a day either side of ``now``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issued(authority: KeyPair, now: dt.datetime, usage: ObjectIdentifier, *extensions: Any) -> KeyPair:
    """A leaf of ``authority`` valid from a minute before ``now`` for ten minutes, for ``usage``.

    ``extensions``: ``(extension, critical)`` pairs. With them (a Fulcio certificate: SAN, issuer)
    the subject is empty and the EKU non-critical; without (a TSA), a named subject and the
    critical ``timeStamping`` EKU RFC 3161 requires.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]) if extensions else name("throwaway tsa"))
        .issuer_name(authority[1].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=not extensions)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority[0].public_key()), critical=False
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return key, builder.sign(authority[0], hashes.SHA256())


def fulcio_leaf(authority: KeyPair, now: dt.datetime, san: x509.GeneralName, issuer: str) -> KeyPair:
    """A code-signing leaf with one SAN and Fulcio's OIDC issuer extension (1.3.6.1.4.1.57264.1.8)."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    return issued(
        authority,
        now,
        ExtendedKeyUsageOID.CODE_SIGNING,
        (x509.SubjectAlternativeName([san]), True),
        (x509.UnrecognizedExtension(OIDC_ISSUER_V2, utf8_string(issuer)), False),
    )


def der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def fulcio_root(authority: KeyPair) -> dict[str, Any]:
    """A trusted root with ``authority`` as its only Fulcio CA and no CT log (so no SCT is required)."""
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [],
        "ctlogs": [],
        "certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": der_b64(authority[1])}]}}],
    }
