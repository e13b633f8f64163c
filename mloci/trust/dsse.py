"""DSSE envelopes (secure-systems-lab/dsse ``envelope.md``, ``protocol.md`` v1.0.0).

The envelope is ``{"payload": b64, "payloadType": T, "signatures": [{"keyid", "sig"}]}``; each
``sig`` signs ``PAE(payloadType, payload)`` = ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``
— never the payload alone. ``keyid`` is a hint only, never used to decide anything. Verifiers
accept standard and URL-safe base64, as the spec requires.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from mloci.trust.keys import PrivateKey, PublicKey, key_id, sign_bytes, verifies
from mloci.types import jsontext
from mloci.types.manifest import canonical_json

IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of ``payload_type`` and ``payload``."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE: verifiers MUST accept either)."""
    padded = text + "=" * (-len(text) % 4)
    if "-" in text or "_" in text:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    return base64.b64decode(padded.encode("ascii"), validate=True)


def _field(text: str, what: str) -> bytes:
    try:
        return b64decode(text)
    except ValueError:  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise ValueError(f"{what} is not base64 (truncated or changed?)") from None


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE JSON envelope."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_dict(self, *, keyids: bool = True) -> dict[str, Any]:
        """The JSON object; sigstore bundles omit an empty ``keyid`` (``keyids=False`` drops it)."""
        return {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()}
                if keyids
                else {"sig": base64.b64encode(s.sig).decode()}
                for s in self.signatures
            ],
        }

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, document: Any) -> Envelope:
        """An envelope from its JSON object; ValueError when the fields DSSE requires are missing."""
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        payload, payload_type, signatures = (
            document.get("payload"),
            document.get("payloadType"),
            document.get("signatures"),
        )
        if (
            not isinstance(payload, str)
            or not isinstance(payload_type, str)
            or not isinstance(signatures, list)
        ):
            raise ValueError("payload, payloadType and signatures are required")
        parsed = []
        for item in signatures:
            if not isinstance(item, dict) or not isinstance(item.get("sig"), str):
                raise ValueError("every signature needs a 'sig'")
            keyid = item.get("keyid") or ""
            parsed.append(Signature(keyid=str(keyid), sig=_field(item["sig"], "a signature's 'sig'")))
        return cls(
            payload_type=payload_type, payload=_field(payload, "the payload"), signatures=tuple(parsed)
        )

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        """Parse an envelope; ValueError when it is not one (the fields DSSE requires are missing)."""
        return cls.from_dict(jsontext.loads(data))


def sign_envelope(payload: bytes, key: PrivateKey, payload_type: str = IN_TOTO_PAYLOAD) -> Envelope:
    """A DSSE envelope of ``payload`` with one signature over its PAE."""
    sig = sign_bytes(key, pae(payload_type, payload))
    return Envelope(payload_type, payload, (Signature(key_id(key.public_key()), sig),))


def signed_by(envelope: Envelope, key: PublicKey) -> bool:
    """Whether any signature of ``envelope`` verifies with ``key`` over the PAE (keyid is ignored)."""
    message = pae(envelope.payload_type, envelope.payload)
    return any(verifies(key, signature.sig, message) for signature in envelope.signatures)
