"""RFC 3161 signed timestamps in sigstore bundles, checked offline against a trusted root.

A bundle's ``verificationMaterial.timestampVerificationData.rfc3161Timestamps[].signedTimestamp``
is a DER ``TimeStampResp`` (RFC 3161 §2.4.2) from a timestamp authority (TSA). As sigstore's
clients do (protobuf-specs ``sigstore_bundle.proto``; sigstore-go ``pkg/verify/tsa.go``), a
timestamp counts when:

- its message imprint is the hash of the **signature bytes** (the DSSE signature or the message
  signature), so it proves the signature existed at ``genTime``;
- its CMS signature verifies with a TSA certificate chain of the trusted root's
  ``timestampAuthorities`` (leaf first, root last), every certificate valid at ``genTime``, the
  leaf with the critical ``timeStamping`` extended key usage;
- ``genTime`` lies inside that authority's ``validFor`` window.

Unlike sigstore-python (which skips a timestamp that does not verify when another source of
time remains), mloci rejects the bundle when *any* timestamp it carries fails: one changed byte
is an error, not a silently weaker proof. The CMS/ASN.1 work is ``rfc3161-client`` (the
``mloci[sigstore]`` extra; sigstore-python uses the same library).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509

from mloci.errors import UnsupportedError
from mloci.trust import Rejected, items, obj, shown

# sigstore-go's limit (pkg/verify/tsa.go): more timestamps than this is a denial-of-service attempt.
MAX_TIMESTAMPS: Final = 32
_RANK = 6


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None


@dataclass(frozen=True)
class Authority:
    """One ``timestampAuthorities[]`` entry: its certificate chain (leaf first) and validity window."""

    name: str
    chain: tuple[x509.Certificate, ...]
    start: datetime | None
    end: datetime | None

    def valid_at(self, moment: datetime) -> bool:
        return (self.start is None or self.start <= moment) and (self.end is None or moment <= self.end)


def authorities(trusted_root: dict[str, Any]) -> list[Authority]:
    """The timestamp authorities of a ``trusted_root.json`` with a usable chain."""
    found: list[Authority] = []
    for item in items(trusted_root.get("timestampAuthorities")):
        try:
            certificates = item["certChain"]["certificates"]
            chain = tuple(
                x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"], validate=True))
                for c in certificates
            )
        except (KeyError, TypeError, ValueError, binascii.Error):
            continue
        if not chain:
            continue
        valid = obj(item.get("validFor"))
        subject = obj(item.get("subject"))
        name = str(subject.get("commonName") or item.get("uri") or "timestamp authority")
        found.append(Authority(name, chain, _time(valid.get("start")), _time(valid.get("end"))))
    return found


def signed_timestamps(document: dict[str, Any]) -> list[bytes]:
    """The DER timestamp responses a bundle carries (none when it has no ``timestampVerificationData``)."""
    material = obj(document.get("verificationMaterial"))
    data = material.get("timestampVerificationData") if isinstance(material, dict) else None
    if not isinstance(data, dict):
        return []
    items = data.get("rfc3161Timestamps") or []
    if not isinstance(items, list):
        raise Rejected("RFC 3161 timestamp: rfc3161Timestamps is not a list", _RANK)
    if len(items) > MAX_TIMESTAMPS:
        raise Rejected(f"RFC 3161 timestamp: {len(items)} timestamps, more than {MAX_TIMESTAMPS}", _RANK)
    found: list[bytes] = []
    for item in items:
        encoded = item.get("signedTimestamp") if isinstance(item, dict) else None
        if not isinstance(encoded, str):
            raise Rejected("RFC 3161 timestamp: signedTimestamp is missing", _RANK)
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise Rejected("RFC 3161 timestamp: signedTimestamp is not base64", _RANK) from None
    if len(set(found)) != len(found):
        raise Rejected("RFC 3161 timestamp: the same timestamp appears twice", _RANK)
    return found


def _client() -> Any:
    try:
        import rfc3161_client  # noqa: PLC0415
    except ImportError:
        raise UnsupportedError(
            "checking the bundle's RFC 3161 timestamp needs the rfc3161-client package",
            hint="pip install 'mloci[sigstore]'",
        ) from None
    return rfc3161_client


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "Mismatch between messages" in text:
        return "it timestamps another signature (message imprint differs)"
    if "pkcs7" in text or "certificates" in text:
        return "its signature does not verify with the authority's certificate chain"
    return shown(text, 120)


def verify_timestamp(response: bytes, signature: bytes, tsas: list[Authority]) -> datetime:
    """The ``genTime`` of one DER timestamp response over ``signature``; Rejected unless a TSA of the root signed it."""
    client = _client()
    try:
        parsed = client.decode_timestamp_response(response)
    except ValueError:
        raise Rejected("RFC 3161 timestamp: not a DER timestamp response", _RANK) from None
    moment: datetime = parsed.tst_info.gen_time
    reason = "no timestamp authority in the trusted root"
    for tsa in tsas:
        if len(tsa.chain) < 2:
            reason = f"{tsa.name}: its certificate chain has no root"
            continue
        builder = client.VerifierBuilder().tsa_certificate(tsa.chain[0]).add_root_certificate(tsa.chain[-1])
        for intermediate in tsa.chain[1:-1]:
            builder = builder.add_intermediate_certificate(intermediate)
        try:
            builder.build().verify_message(parsed, signature)
        except (client.VerificationError, ValueError) as exc:
            reason = _reason(exc)
            continue
        if not tsa.valid_at(moment):
            reason = f"{shown(tsa.name)} was not a trusted authority at {moment.isoformat()}"
            continue
        return moment
    raise Rejected(f"RFC 3161 timestamp: {reason}", _RANK)


def verify_timestamps(
    document: dict[str, Any], signature: bytes, trusted_root: dict[str, Any]
) -> list[datetime]:
    """Every RFC 3161 timestamp of the bundle ``document`` over ``signature``, verified; their times.

    Rejected when one does not verify or the root has no timestamp authority for them.
    """
    responses = signed_timestamps(document)
    if not responses:
        return []
    tsas = authorities(trusted_root)
    if not tsas:
        raise Rejected(
            "RFC 3161 timestamp: the bundle carries one but the trusted root lists no timestamp authority",
            _RANK,
        )
    return [verify_timestamp(response, signature, tsas) for response in responses]
