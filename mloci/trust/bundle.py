"""sigstore bundles (protobuf-specs ``sigstore_bundle.proto``, JSON form), as cosign v3 writes them.

A bundle is ``{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial":
{...}, "dsseEnvelope" | "messageSignature": {...}}``. The verification material is a key hint
(``publicKey.hint``: base64 SHA-256 of the key's DER SPKI), a Fulcio certificate
(``certificate.rawBytes``; ``x509CertificateChain`` before v0.3), transparency-log entries and
RFC 3161 timestamps.

``cosign sign --key`` (v3) signs an image as a DSSE envelope around an in-toto Statement v1 whose
``predicateType`` is ``https://sigstore.dev/cosign/sign/v1`` and whose only subject is the image
manifest digest (no name, empty predicate); :func:`image_signature_bundle` writes exactly that
structure. ``cosign sign-blob`` writes a ``messageSignature``: the artifact's SHA-256 and a
signature over the artifact bytes.

Key-based bundles are verified here with ``cryptography`` alone (:func:`verify_with_key`); their
transparency-log entries too, when a trusted root is given. Certificate (keyless) bundles go
through :mod:`mloci.trust.keyless`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from mloci.trust import Rejected, items, obj, rekor, shown, timestamp
from mloci.trust.dsse import IN_TOTO_PAYLOAD, Envelope, b64decode, pae, sign_envelope, signed_by
from mloci.trust.intoto import COSIGN_SIGN_V1, STATEMENT_TYPE, check_statement
from mloci.trust.keys import PrivateKey, PublicKey, key_hint, spki_der
from mloci.types import jsontext
from mloci.types.digest import Digest

BUNDLE_V03: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_PREFIX: Final = "application/vnd.dev.sigstore.bundle"
BUNDLE_TYPES: Final = (
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    BUNDLE_V03,
)
# OCI manifest annotations cosign puts on a bundle referrer (cosign specs/BUNDLE_SPEC.md).
CONTENT_ANNOTATION: Final = "dev.sigstore.bundle.content"
PREDICATE_ANNOTATION: Final = "dev.sigstore.bundle.predicateType"

Content = Literal["dsse-envelope", "message-signature"]


@dataclass(frozen=True)
class Bundle:
    """A parsed sigstore bundle; nothing in it is trusted until a ``verify_*`` function says so."""

    media_type: str
    content: Content
    envelope: Envelope | None
    message_digest: bytes | None  # SHA-256 of the artifact, for message signatures
    signature: bytes  # the DSSE signature (the first) or the message signature
    hint: str | None
    certificate: bytes | None  # DER of the signing certificate
    tlog_entries: tuple[dict[str, Any], ...]
    document: dict[str, Any] = field(repr=False, compare=False)

    @property
    def predicate_type(self) -> str | None:
        """The statement's predicate type, *unverified* (for annotations and display)."""
        if self.envelope is None or self.envelope.payload_type != IN_TOTO_PAYLOAD:
            return None
        try:
            value = jsontext.loads(self.envelope.payload)
        except (ValueError, UnicodeDecodeError):
            return None
        kind = value.get("predicateType") if isinstance(value, dict) else None
        return kind if isinstance(kind, str) else None

    @classmethod
    def from_json(cls, data: bytes | str) -> Bundle:
        """Parse a bundle; ValueError (one line) when it is not a sigstore bundle mloci understands."""
        try:
            document = jsontext.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        media_type = document.get("mediaType")
        if media_type not in BUNDLE_TYPES:
            raise ValueError(f"media type {media_type!r} is not a sigstore bundle")
        material = document.get("verificationMaterial")
        if not isinstance(material, dict):
            raise ValueError("verificationMaterial is missing")
        hint = obj(material.get("publicKey")).get("hint")
        certificate: bytes | None = None
        try:
            if isinstance(material.get("certificate"), dict):
                certificate = base64.b64decode(material["certificate"]["rawBytes"], validate=True)
            elif isinstance(material.get("x509CertificateChain"), dict):
                chain = material["x509CertificateChain"].get("certificates") or []
                certificate = base64.b64decode(chain[0]["rawBytes"], validate=True) if chain else None
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise ValueError("the certificate is not base64 DER") from None
        entries = material.get("tlogEntries") or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError("tlogEntries is not a list of entries")
        envelope: Envelope | None = None
        message_digest: bytes | None = None
        if "dsseEnvelope" in document:
            envelope = Envelope.from_dict(document["dsseEnvelope"])
            if len(envelope.signatures) != 1:
                raise ValueError(f"the envelope holds {len(envelope.signatures)} signatures, not one")
            signature = envelope.signatures[0].sig
            content: Content = "dsse-envelope"
        elif isinstance(document.get("messageSignature"), dict):
            message = document["messageSignature"]
            try:
                signature = b64decode(message["signature"])
                digest = message.get("messageDigest")
                if digest is not None:
                    if digest.get("algorithm") != "SHA2_256":
                        raise ValueError(
                            f"message digest algorithm {digest.get('algorithm')!r} is not SHA2_256"
                        )
                    message_digest = b64decode(digest["digest"])
            except (KeyError, TypeError, AttributeError, binascii.Error):
                raise ValueError("messageSignature needs a base64 signature and digest") from None
            content = "message-signature"
        else:
            raise ValueError("the bundle holds neither a dsseEnvelope nor a messageSignature")
        return cls(
            media_type=str(media_type),
            content=content,
            envelope=envelope,
            message_digest=message_digest,
            signature=signature,
            hint=hint if isinstance(hint, str) else None,
            certificate=certificate,
            tlog_entries=tuple(entries),
            document=document,
        )


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def image_signature_statement(
    digest: Digest, annotations: Mapping[str, str] | None = None, *, name: str | None = None
) -> bytes:
    """The statement ``cosign sign`` (v3) signs for an image: subject = the manifest digest, no name.

    Field for field as cosign v3.1 writes it (``annotations`` and ``predicate`` present and
    empty); cosign's protojson output adds random spaces after separators, mloci writes none.
    ``annotations`` (``sign -a``) are signed as the subject's annotations; ``name`` (keyless
    signing through sigstore-python, which requires one) names the repository.
    """
    subject: dict[str, Any] = {"name": name} if name else {}
    subject.update({"digest": {digest.algorithm: digest.encoded}, "annotations": dict(annotations or {})})
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [subject],
        "predicateType": COSIGN_SIGN_V1,
        "predicate": {},
    }
    return _compact(statement)


def dsse_bundle_of(envelope: Envelope, key: PublicKey) -> bytes:
    """A key-based v0.3 bundle around an already signed ``envelope`` (one signature by ``key``)."""
    document = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": key_hint(key)}},
        "dsseEnvelope": envelope.to_dict(keyids=False),
    }
    return _compact(document)


def dsse_bundle(statement: bytes, key: PrivateKey) -> bytes:
    """A key-based v0.3 bundle: ``publicKey.hint`` and a DSSE envelope signing ``statement``.

    Field order and shape as cosign v3 (``mediaType``, ``verificationMaterial``, ``dsseEnvelope``
    with ``payload``, ``payloadType``, ``signatures: [{sig}]``); no transparency-log entry.
    """
    return dsse_bundle_of(sign_envelope(statement, key), key.public_key())


def image_signature_bundle(
    digest: Digest, key: PrivateKey, annotations: Mapping[str, str] | None = None
) -> bytes:
    """What ``cosign sign --key`` (v3) attaches to the image ``digest``."""
    return dsse_bundle(image_signature_statement(digest, annotations), key)


# -- verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """What a verified bundle vouches for."""

    content: Content
    digest: Digest  # the artifact (subject) the signature binds
    predicate_type: str | None
    statement: dict[str, Any] | None
    signer: str  # "key <hint>" or the certificate identity
    issuer: str | None = None
    log: rekor.LogEvidence | None = None
    timestamps: tuple[datetime, ...] = ()  # genTime of each verified RFC 3161 timestamp

    def to_json(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "digest": str(self.digest),
            "predicateType": self.predicate_type,
            "signer": self.signer,
            "issuer": self.issuer,
            "transparencyLog": self.log.to_json() if self.log else None,
            "timestamps": [moment.isoformat() for moment in self.timestamps],
        }


def _verify_prehashed(key: PublicKey, signature: bytes, digest: bytes) -> bool:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return False  # Ed25519 signs the message itself; there is no prehashed form
    try:
        key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        return False
    return True


def _pem_key(data: bytes) -> PublicKey | None:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) else None


def _same_key(pem_b64: Any, key: PublicKey) -> bool:
    """Whether a logged verifier is ``key``: base64 PEM (Rekor v1) or ``{publicKey: {rawBytes}}`` (v2)."""
    if isinstance(pem_b64, dict):
        raw = obj(pem_b64.get("publicKey")).get("rawBytes")
        try:
            return isinstance(raw, str) and base64.b64decode(raw, validate=True) == spki_der(key)
        except (binascii.Error, ValueError):
            return False
    if not isinstance(pem_b64, str):
        return False
    try:
        logged = _pem_key(base64.b64decode(pem_b64, validate=True))
    except (binascii.Error, ValueError):
        return False
    return logged is not None and spki_der(logged) == spki_der(key)


def bind_entry(body: dict[str, Any], bundle: Bundle, verifier_matches: Any) -> None:
    """Rejected unless the logged ``body`` is this bundle's signature (artifact/payload hash and signature).

    ``verifier_matches(value)`` says whether the entry's key or certificate (base64 PEM) is the signer's.
    """
    kind, spec = body.get("kind"), body.get("spec")
    if not isinstance(spec, dict):
        raise Rejected("transparency log entry: the body has no spec", 6)
    if body.get("apiVersion") == rekor.V2:
        _bind_v2(kind, spec, bundle, verifier_matches)
        return
    signature = base64.b64encode(bundle.signature).decode()
    if kind == "hashedrekord":
        logged_hash = obj(obj(spec.get("data")).get("hash")).get("value")
        expected: str | None
        if bundle.envelope is not None:
            # A DSSE bundle logged as hashedrekord (sigstore client spec): the hash of the PAE.
            expected = hashlib.sha256(pae(bundle.envelope.payload_type, bundle.envelope.payload)).hexdigest()
        else:
            expected = bundle.message_digest.hex() if bundle.message_digest is not None else None
        if expected is None or logged_hash != expected:
            raise Rejected("transparency log entry: it logs another artifact hash", 6)
        logged = obj(spec.get("signature"))
        if logged.get("content") != signature:
            raise Rejected("transparency log entry: it logs another signature", 6)
        if not verifier_matches(obj(logged.get("publicKey")).get("content")):
            raise Rejected("transparency log entry: it logs another key or certificate", 6)
        return
    if kind == "dsse" and bundle.envelope is not None:
        payload_hash = obj(spec.get("payloadHash")).get("value")
        if payload_hash != hashlib.sha256(bundle.envelope.payload).hexdigest():
            raise Rejected("transparency log entry: it logs another payload", 6)
        for item in items(spec.get("signatures")):
            if isinstance(item, dict) and item.get("signature") == signature:
                if verifier_matches(item.get("verifier")):
                    return
                raise Rejected("transparency log entry: it logs another key or certificate", 6)
        raise Rejected("transparency log entry: it logs another signature", 6)
    raise Rejected(f"transparency log entry: kind {shown(kind)!r} does not match the bundle's content", 6)


def _logged_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _bind_v2(kind: Any, spec: dict[str, Any], bundle: Bundle, verifier_matches: Any) -> None:
    """Rekor v2 bodies (rekor-tiles ``hashedrekord.proto``/``dsse.proto``, protojson): bytes are base64.

    ``hashedRekordV002``: ``data.digest`` is the artifact's SHA-256 (message signatures) or the
    SHA-256 of the DSSE PAE (DSSE bundles, as sigstore clients log them on Rekor v2), with
    ``signature.content`` and ``signature.verifier``. ``dsseV002``: ``payloadHash`` and the
    signatures with their verifiers.
    """
    if kind == "hashedrekord" and isinstance(spec.get("hashedRekordV002"), dict):
        entry = spec["hashedRekordV002"]
        data = obj(entry.get("data"))
        if data.get("algorithm") != "SHA2_256":
            raise Rejected("transparency log entry: the logged digest is not SHA2_256", 6)
        if bundle.envelope is not None:
            expected = hashlib.sha256(pae(bundle.envelope.payload_type, bundle.envelope.payload)).digest()
        else:
            expected = bundle.message_digest or b""
        if _logged_bytes(data.get("digest")) != expected:
            raise Rejected("transparency log entry: it logs another artifact hash", 6)
        logged = obj(entry.get("signature"))
        if _logged_bytes(logged.get("content")) != bundle.signature:
            raise Rejected("transparency log entry: it logs another signature", 6)
        if not verifier_matches(obj(logged.get("verifier"))):
            raise Rejected("transparency log entry: it logs another key or certificate", 6)
        return
    if kind == "dsse" and bundle.envelope is not None and isinstance(spec.get("dsseV002"), dict):
        entry = spec["dsseV002"]
        payload_hash = obj(entry.get("payloadHash"))
        if (
            payload_hash.get("algorithm") != "SHA2_256"
            or _logged_bytes(payload_hash.get("digest")) != hashlib.sha256(bundle.envelope.payload).digest()
        ):
            raise Rejected("transparency log entry: it logs another payload", 6)
        for item in items(entry.get("signatures")):
            if isinstance(item, dict) and _logged_bytes(item.get("content")) == bundle.signature:
                if verifier_matches(obj(item.get("verifier"))):
                    return
                raise Rejected("transparency log entry: it logs another key or certificate", 6)
        raise Rejected("transparency log entry: it logs another signature", 6)
    raise Rejected(
        f"transparency log entry: Rekor v2 kind {shown(kind)!r} does not match the bundle's content", 6
    )


def verify_with_key(
    bundle: Bundle,
    key: PublicKey,
    digest: Digest,
    *,
    trusted_root: dict[str, Any] | None = None,
    predicate_type: str | None = None,
    require_tlog: bool = False,
) -> Verified:
    """Verify a key-based bundle over the artifact ``digest`` (the subject, or the blob's SHA-256).

    DSSE: a signature by ``key`` over the PAE, an in-toto statement (of ``predicate_type``; None:
    any) whose subject names ``digest``. Message signature: the bundle's message digest is
    ``digest`` and the signature verifies over it. With ``trusted_root`` every transparency-log
    entry must verify and log this signature; without one, entries are not checked (unless
    ``require_tlog``, which then fails). Rejected with the reason otherwise.
    """
    statement: dict[str, Any] | None = None
    kind: str | None = None
    if bundle.envelope is not None:
        if not signed_by(bundle.envelope, key):
            raise Rejected("signature does not match (the bundle was altered or signed by another key)", 2)
        kind, statement = check_statement(
            bundle.envelope.payload_type, bundle.envelope.payload, digest, predicate_type
        )
    else:
        if digest.algorithm != "sha256":
            raise Rejected(f"message signatures are over SHA-256, not {digest.algorithm}", 2)
        if bundle.message_digest is not None and bundle.message_digest != bytes.fromhex(digest.encoded):
            raise Rejected(
                f"the bundle signs artifact sha256:{bundle.message_digest.hex()[:12]}…, not {digest}", 5
            )
        if not _verify_prehashed(key, bundle.signature, bytes.fromhex(digest.encoded)):
            raise Rejected("signature does not match (the artifact was altered or signed by another key)", 2)
        if predicate_type not in (None, COSIGN_SIGN_V1):
            raise Rejected("a message signature carries no attestation", 4)
    evidence: rekor.LogEvidence | None = None
    times: list[datetime] = []
    if trusted_root is not None:
        if not bundle.tlog_entries and require_tlog:
            raise Rejected("the bundle has no transparency-log entry", 6)
        times = timestamp.verify_timestamps(bundle.document, bundle.signature, trusted_root)
        logs = rekor.log_keys(trusted_root)
        for entry in bundle.tlog_entries:
            evidence = rekor.verify_entry(entry, logs, times)
            bind_entry(rekor.entry_body(entry), bundle, lambda value: _same_key(value, key))
    elif require_tlog:
        raise Rejected("transparency-log inclusion was required but no trusted root was given", 6)
    return Verified(
        content=bundle.content,
        digest=digest,
        predicate_type=kind,
        statement=statement,
        signer=f"key {key_hint(key)}",
        log=evidence,
        timestamps=tuple(times),
    )
