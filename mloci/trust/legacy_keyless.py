"""cosign v2 *keyless* legacy signatures: a ``.sig`` layer with a Fulcio certificate and a Rekor SET.

``cosign sign`` (v1/v2) without a key writes, on the simple-signing layer of ``sha256-<hex>.sig``,
besides the signature annotation (``dev.cosignproject.cosign/signature``):

- ``dev.sigstore.cosign/certificate``: the Fulcio signing certificate (PEM);
- ``dev.sigstore.cosign/chain``: the intermediate and root (PEM) — a hint only: the chain is
  built from the trusted root's ``certificateAuthorities``, never anchored on this annotation;
- ``dev.sigstore.cosign/bundle``: the Rekor v1 inclusion promise,
  ``{"SignedEntryTimestamp": b64, "Payload": {"body": b64, "integratedTime", "logIndex", "logID": hex}}``;
- ``dev.sigstore.cosign/rfc3161timestamp`` (``cosign sign --timestamp-server-url``):
  ``{"SignedRFC3161Timestamp": b64}``, a DER RFC 3161 response over the raw signature bytes.

``cosign attest`` (v1/v2) writes the same certificate, chain, bundle and timestamp annotations on
each layer of ``sha256-<hex>.att``, whose blob is a DSSE envelope (no signature annotation): the
Rekor entry is an ``intoto`` (0.0.1, 0.0.2) or ``dsse`` (0.0.1) body, and the timestamp covers the
layer's bytes (cosign ``pkg/cosign/verify.go``, ``VerifyRFC3161Timestamp``).

Either time source places the short-lived certificate in time: the certificate path must be valid
at the Rekor integrated time and at every RFC 3161 time (each one must verify: one bad byte is an
error, not a weaker proof). The SCT is required when the trusted root lists CT logs (the public-good
root does; a private deployment without a CT log lists none), as cosign requires it unless told not to.

Verified offline against a ``trusted_root.json`` with ``cryptography`` (and ``rfc3161-client`` for
timestamps; no ``sigstore`` package): the SET by a Rekor key of the root valid at the integrated
time; the logged ``hashedrekord`` is this payload's SHA-256, this signature and this certificate;
the certificate chains to a Fulcio CA of the root valid at the signing time (every certificate of
the path valid then; the leaf for code signing); an embedded SCT (RFC 6962) verifies with a CT log
of the root; the signature verifies over the payload's exact bytes with the certificate's key; and
the certificate's SAN and OIDC issuer match the identity rule.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from mloci.errors import UsageError
from mloci.trust import Rejected, items, obj, rekor, shown, timestamp
from mloci.trust.dsse import Envelope, signed_by
from mloci.trust.keyless import IdentityRule
from mloci.trust.keys import PublicKey, key_hint, public_key_from_pem, spki_der, verifies

CERTIFICATE_ANNOTATION: Final = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION: Final = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION: Final = "dev.sigstore.cosign/bundle"
TIMESTAMP_ANNOTATION: Final = "dev.sigstore.cosign/rfc3161timestamp"
_RANK = 6


@dataclass(frozen=True)
class KeylessSignature:
    """Who signed a legacy layer and where it was logged."""

    identity: str
    issuer: str
    log: rekor.LogEvidence | None  # None: placed in time by RFC 3161 timestamps only
    timestamps: tuple[datetime, ...] = ()


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None


def _pem_certificates(text: str | None, what: str = "the certificate annotation") -> list[x509.Certificate]:
    if not text:
        return []
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise Rejected(f"{what} is not a PEM X.509 certificate", 1) from None


def _authorities(
    root: dict[str, Any], moment: datetime
) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """The Fulcio roots and intermediates of ``root`` whose ``validFor`` holds ``moment``."""
    anchors: list[x509.Certificate] = []
    intermediates: list[x509.Certificate] = []
    for authority in items(root.get("certificateAuthorities")):
        valid = obj(authority.get("validFor"))
        start, end = _time(valid.get("start")), _time(valid.get("end"))
        if (start is not None and moment < start) or (end is not None and moment > end):
            continue
        try:
            chain = [
                x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"], validate=True))
                for c in authority["certChain"]["certificates"]
            ]
        except (KeyError, TypeError, ValueError, binascii.Error):
            continue
        if chain:
            anchors.append(chain[-1])
            intermediates.extend(chain[:-1])
    return anchors, intermediates


def verify_chain(
    leaf: x509.Certificate, hints: list[x509.Certificate], root: dict[str, Any], moment: datetime
) -> list[x509.Certificate]:
    """The path from ``leaf`` to a Fulcio CA of ``root`` valid at ``moment`` (leaf excluded); Rejected otherwise."""
    anchors, intermediates = _authorities(root, moment)
    if not anchors:
        raise Rejected(f"no Fulcio CA of the trusted root was valid at {moment.isoformat()}", _RANK)
    # Fulcio certificates carry the code-signing usage, not client-auth: allow any EKU here and
    # check code signing below, keeping every other default extension rule.
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(moment)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        chain = verifier.verify(leaf, [*intermediates, *hints]).chain[1:]
    except (VerificationError, ValueError, x509.UnsupportedGeneralNameType) as exc:
        raise Rejected(
            f"the certificate does not chain to a Fulcio CA of the trusted root at {moment.isoformat()} "
            f"({shown(str(exc), 120)})",
            _RANK,
        ) from None
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        raise Rejected("the certificate is not for code signing", _RANK)
    return list(chain)


def verify_sct(leaf: x509.Certificate, issuer: x509.Certificate, root: dict[str, Any]) -> None:
    """An embedded SCT of ``leaf`` verifies with a CT log of ``root`` (RFC 6962 §3.2, precertificate entry)."""
    try:
        scts = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        raise Rejected("the certificate has no SCT (it was not logged in a CT log)", _RANK) from None
    logs = {log.log_id: log for log in rekor.log_keys(root, "ctlogs")}
    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).digest()
    tbs = leaf.tbs_precertificate_bytes
    for sct in scts:
        log = logs.get(sct.log_id)
        when = sct.timestamp.replace(tzinfo=UTC)
        if log is None or not log.valid_at(when) or not isinstance(log.key, ec.EllipticCurvePublicKey):
            continue
        milliseconds = round(when.timestamp() * 1000)
        extensions = sct.extension_bytes
        signed = (
            b"\x00\x00"
            + milliseconds.to_bytes(8, "big")
            + b"\x00\x01"
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + len(extensions).to_bytes(2, "big")
            + extensions
        )
        try:
            log.key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return
    raise Rejected("no SCT of the certificate verifies with a CT log of the trusted root", _RANK)


def _bind(
    body: dict[str, Any], data_hash: str, signature: bytes, verifier_matches: Callable[[bytes], bool]
) -> None:
    """Rejected unless the logged hashedrekord is ``data_hash`` (hex), ``signature`` and the signer (PEM)."""
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    assert isinstance(spec, dict)  # noqa: S101
    if body.get("kind") != "hashedrekord":
        raise Rejected(f"transparency log entry: kind {shown(body.get('kind'))!r} is not hashedrekord", _RANK)
    logged_hash = obj(obj(spec.get("data")).get("hash")).get("value")
    if logged_hash != data_hash:
        raise Rejected("transparency log entry: it logs another payload", _RANK)
    logged = obj(spec.get("signature"))
    if logged.get("content") != base64.b64encode(signature).decode():
        raise Rejected("transparency log entry: it logs another signature", _RANK)
    try:
        pem = base64.b64decode(obj(logged.get("publicKey")).get("content") or "", validate=True)
    except (binascii.Error, ValueError):
        pem = b""
    if not verifier_matches(pem):
        raise Rejected("transparency log entry: it logs another certificate or key", _RANK)


def _same_certificate(certificate: x509.Certificate) -> Callable[[bytes], bool]:
    def matches(pem: bytes) -> bool:
        try:
            return x509.load_pem_x509_certificate(pem) == certificate
        except ValueError:
            return False

    return matches


def _same_key(key: PublicKey) -> Callable[[bytes], bool]:
    def matches(pem: bytes) -> bool:
        try:
            return spki_der(public_key_from_pem(pem)) == spki_der(key)
        except UsageError:
            return False

    return matches


@dataclass(frozen=True)
class _Promise:
    body: dict[str, Any]
    evidence: rekor.LogEvidence


def _promise(document: Any, root: dict[str, Any], what: str) -> _Promise:
    """A verified Rekor bundle ``{"SignedEntryTimestamp", "Payload": {body, integratedTime, logIndex, logID}}``."""
    try:
        promise = document["Payload"]
        body_b64 = promise["body"]
        integrated = int(promise["integratedTime"])
        index = int(promise["logIndex"])
        log_id = bytes.fromhex(promise["logID"])
        set_b64 = document["SignedEntryTimestamp"]
        body = json.loads(base64.b64decode(body_b64, validate=True))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise Rejected(f"{what} is not a Rekor bundle", _RANK) from None
    if not isinstance(body, dict) or not isinstance(body_b64, str) or not isinstance(set_b64, str):
        raise Rejected(f"{what} is not a Rekor bundle", _RANK)
    evidence = rekor.verify_promise(body_b64, integrated, index, log_id, set_b64, rekor.log_keys(root))
    return _Promise(body, evidence)


def _check_certificate(
    leaf: x509.Certificate, hints: list[x509.Certificate], root: dict[str, Any], moments: list[datetime]
) -> None:
    """The certificate path is valid at every signing time; its SCT verifies when the root lists CT logs."""
    if not moments:
        raise Rejected("nothing places the short-lived certificate in time", _RANK)
    chain: list[x509.Certificate] = []
    for moment in moments:
        chain = verify_chain(leaf, hints, root, moment)
    if items(root.get("ctlogs")):
        verify_sct(leaf, chain[0], root)


def _integrated(evidence: rekor.LogEvidence) -> datetime:
    assert evidence.integrated_time is not None  # noqa: S101  (a Rekor v1 SET always has one)
    return evidence.integrated_time


def _json_annotation(raw: str, name: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise Rejected(f"the {name} annotation is not JSON", _RANK) from None


def _signing_times(
    annotations: Mapping[str, str],
    root: dict[str, Any],
    *,
    timestamped: bytes,
    bind: Callable[[dict[str, Any]], None],
) -> tuple[rekor.LogEvidence | None, list[datetime]]:
    """When the layer was signed: the Rekor SET's integrated time and the RFC 3161 times over ``timestamped``.

    ``bind`` checks that the logged body is this signature. Rejected when neither is there or one fails.
    """
    raw_bundle = annotations.get(BUNDLE_ANNOTATION)
    raw_timestamp = annotations.get(TIMESTAMP_ANNOTATION)
    if not raw_bundle and not raw_timestamp:
        raise Rejected(
            f"the layer has neither {BUNDLE_ANNOTATION} (Rekor SET) nor {TIMESTAMP_ANNOTATION}: "
            "nothing places the short-lived certificate in time",
            _RANK,
        )
    evidence: rekor.LogEvidence | None = None
    times: list[datetime] = []
    if raw_bundle:
        document = _json_annotation(raw_bundle, BUNDLE_ANNOTATION)
        promise = _promise(document, root, f"the {BUNDLE_ANNOTATION} annotation")
        bind(promise.body)
        evidence = promise.evidence
        times.append(_integrated(evidence))
    if raw_timestamp:
        encoded = obj(_json_annotation(raw_timestamp, TIMESTAMP_ANNOTATION)).get("SignedRFC3161Timestamp")
        try:
            response = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
        except (binascii.Error, ValueError):
            response = b""
        if not response:
            raise Rejected(
                f"the {TIMESTAMP_ANNOTATION} annotation has no base64 SignedRFC3161Timestamp", _RANK
            )
        authorities = timestamp.authorities(root)
        if not authorities:
            raise Rejected(
                "RFC 3161 timestamp: the layer carries one but the trusted root lists no timestamp authority",
                _RANK,
            )
        times.append(timestamp.verify_timestamp(response, timestamped, authorities))
    return evidence, times


def verify_layer(
    payload: bytes, annotations: Mapping[str, str], rule: IdentityRule, root: dict[str, Any]
) -> KeylessSignature:
    """Verify one keyless legacy signature layer (payload bytes and layer annotations); Rejected otherwise.

    The payload's binding to an image digest is the caller's (:func:`mloci.trust.cosign.check_payload`).
    """
    leaf_pem = annotations.get(CERTIFICATE_ANNOTATION)
    certificates = _pem_certificates(leaf_pem)
    if not certificates:
        raise Rejected(
            f"the layer has no {CERTIFICATE_ANNOTATION} annotation: it is not a keyless signature", 0
        )
    leaf = certificates[0]
    try:
        signature = base64.b64decode(
            annotations.get("dev.cosignproject.cosign/signature") or "", validate=True
        )
    except (binascii.Error, ValueError):
        raise Rejected("the signature annotation is not base64", 0) from None
    identity, issuer = rule.check(leaf)
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not verifies(key, signature, payload):
        raise Rejected("signature does not match the certificate's key", 2)
    evidence, times = _signing_times(
        annotations,
        root,
        timestamped=signature,
        bind=lambda body: _bind(
            body, hashlib.sha256(payload).hexdigest(), signature, _same_certificate(leaf)
        ),
    )
    hints = _pem_certificates(annotations.get(CHAIN_ANNOTATION), "the chain annotation")
    _check_certificate(leaf, hints, root, times)
    return KeylessSignature(shown(identity), shown(issuer), evidence, tuple(times))


@dataclass(frozen=True)
class KeylessAttestation:
    """A keyless legacy ``.att`` layer whose envelope signature, certificate and time verified."""

    signed: KeylessSignature
    envelope: Envelope


def verify_attestation_layer(
    blob: bytes, annotations: Mapping[str, str], rule: IdentityRule, root: dict[str, Any]
) -> KeylessAttestation:
    """Verify one keyless layer of cosign v1/v2's ``sha256-<hex>.att`` (a DSSE envelope ``blob``).

    As :func:`verify_layer`, with the envelope's signature over the PAE, the Rekor ``intoto`` or
    ``dsse`` entry bound to this envelope and certificate, and the RFC 3161 timestamp over ``blob``.
    The statement (subject, predicate type) is the caller's (:func:`mloci.trust.intoto.check_statement`).
    """
    certificates = _pem_certificates(annotations.get(CERTIFICATE_ANNOTATION))
    if not certificates:
        raise Rejected(
            f"the layer has no {CERTIFICATE_ANNOTATION} annotation: it is not a keyless attestation", 0
        )
    leaf = certificates[0]
    try:
        envelope = Envelope.from_json(blob)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"the layer is not a DSSE envelope ({shown(exc, 120)})", 1) from None
    identity, issuer = rule.check(leaf)
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not signed_by(envelope, key):
        raise Rejected("the envelope's signature does not match the certificate's key", 2)
    evidence, times = _signing_times(
        annotations,
        root,
        timestamped=blob,
        bind=lambda body: _bind_envelope(body, blob, envelope, _same_certificate(leaf)),
    )
    hints = _pem_certificates(annotations.get(CHAIN_ANNOTATION), "the chain annotation")
    _check_certificate(leaf, hints, root, times)
    return KeylessAttestation(
        KeylessSignature(shown(identity), shown(issuer), evidence, tuple(times)), envelope
    )


def _b64_text(value: Any) -> bytes:
    """The bytes of a base64 JSON string, or b"" (the caller's comparison then fails)."""
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _bind_envelope(
    body: dict[str, Any], blob: bytes, envelope: Envelope, signer_matches: Callable[[bytes], bool]
) -> None:
    """Rejected unless the logged ``intoto``/``dsse`` entry is this envelope, signed by this certificate.

    intoto 0.0.1 logs the SHA-256 of the envelope as uploaded (the layer's bytes, as cosign checks)
    and the signer; intoto 0.0.2 and dsse 0.0.1 log the payload hash, the signatures and their
    signers (their envelope hash depends on how the envelope was re-serialized, so it is not used).
    """
    kind, version, spec = body.get("kind"), body.get("apiVersion"), obj(body.get("spec"))
    payload_hash = hashlib.sha256(envelope.payload).hexdigest()
    ours = {base64.b64encode(s.sig).decode() for s in envelope.signatures}
    signers: list[bytes]
    if kind == "intoto" and version == "0.0.1":
        content = obj(spec.get("content"))
        if obj(content.get("hash")).get("value") != hashlib.sha256(blob).hexdigest():
            raise Rejected("transparency log entry: it logs another envelope", _RANK)
        logged_payload = obj(content.get("payloadHash")).get("value")
        if logged_payload is not None and logged_payload != payload_hash:
            raise Rejected("transparency log entry: it logs another payload", _RANK)
        signers = [_b64_text(spec.get("publicKey"))]
    elif kind == "intoto" and version == "0.0.2":
        content = obj(spec.get("content"))
        if obj(content.get("payloadHash")).get("value") != payload_hash:
            raise Rejected("transparency log entry: it logs another payload", _RANK)
        # Rekor's intoto 0.0.2 base64-encodes the envelope's (already base64) signature once more.
        logged = items(obj(content.get("envelope")).get("signatures"))
        signers = [
            _b64_text(item.get("publicKey"))
            for item in logged
            if isinstance(item, dict) and _b64_text(item.get("sig")).decode("ascii", "replace") in ours
        ]
    elif kind == "dsse" and version == "0.0.1":
        if obj(spec.get("payloadHash")).get("value") != payload_hash:
            raise Rejected("transparency log entry: it logs another payload", _RANK)
        signers = [
            _b64_text(item.get("verifier"))
            for item in items(spec.get("signatures"))
            if isinstance(item, dict) and item.get("signature") in ours
        ]
    else:
        raise Rejected(
            f"transparency log entry: kind {shown(kind)} {shown(version)} is not an intoto or dsse entry",
            _RANK,
        )
    if not signers:
        raise Rejected("transparency log entry: it logs another signature", _RANK)
    if not any(signer_matches(pem) for pem in signers):
        raise Rejected("transparency log entry: it logs another certificate or key", _RANK)


def is_blob_bundle(document: Any) -> bool:
    """Whether ``document`` is cosign v1/v2's ``sign-blob --bundle`` file (``base64Signature``, ``cert``, ``rekorBundle``)."""
    return isinstance(document, dict) and "base64Signature" in document and "mediaType" not in document


@dataclass(frozen=True)
class BlobSignature:
    signer: str
    issuer: str | None
    log: rekor.LogEvidence | None


def verify_blob_bundle(
    document: dict[str, Any],
    digest: bytes,
    *,
    key: PublicKey | None,
    rule: IdentityRule | None,
    root: dict[str, Any] | None,
) -> BlobSignature:
    """Verify a cosign v1/v2 ``sign-blob --bundle`` file over the blob's SHA-256 ``digest``.

    Keyless (``cert``: base64 of the PEM certificate) with ``rule`` and ``root``: as a keyless
    ``.sig`` layer (SET, logged body, chain at the integrated time, SCT, identity). With ``key``:
    the signature, and with ``root`` the Rekor bundle when there is one.
    """
    try:
        signature = base64.b64decode(document["base64Signature"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise Rejected("base64Signature is not base64", 1) from None
    rekor_bundle = document.get("rekorBundle")
    if rule is not None:
        if not document.get("cert"):
            raise Rejected("the bundle is signed with a key, not a certificate: verify it with --key", 1)
        if root is None:
            raise Rejected("keyless verification needs a trusted root", 1)
        try:
            certificates = _pem_certificates(base64.b64decode(document["cert"], validate=True).decode())
        except (TypeError, ValueError, binascii.Error):
            raise Rejected("cert is not a base64 PEM certificate", 1) from None
        if not certificates:
            raise Rejected("cert is not a base64 PEM certificate", 1)
        leaf = certificates[0]
        identity, issuer = rule.check(leaf)
        cert_key = leaf.public_key()
        if not isinstance(cert_key, ec.EllipticCurvePublicKey) or not _prehashed(cert_key, signature, digest):
            raise Rejected("signature does not match the certificate's key (the blob was altered?)", 2)
        if not isinstance(rekor_bundle, dict):
            raise Rejected("the bundle has no rekorBundle: nothing places the certificate in time", _RANK)
        promise = _promise(rekor_bundle, root, "rekorBundle")
        _bind(promise.body, digest.hex(), signature, _same_certificate(leaf))
        _check_certificate(leaf, certificates[1:], root, [_integrated(promise.evidence)])
        return BlobSignature(shown(identity), shown(issuer), promise.evidence)
    assert key is not None  # noqa: S101
    if document.get("cert"):
        raise Rejected("the bundle is signed with a certificate: verify it with --certificate-identity", 1)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not _prehashed(key, signature, digest):
        raise Rejected("signature does not match (the blob was altered or signed by another key)", 2)
    evidence = None
    if root is not None and isinstance(rekor_bundle, dict):
        promise = _promise(rekor_bundle, root, "rekorBundle")
        _bind(promise.body, digest.hex(), signature, _same_key(key))
        evidence = promise.evidence
    return BlobSignature(f"key {key_hint(key)}", None, evidence)


def _prehashed(key: ec.EllipticCurvePublicKey, signature: bytes, digest: bytes) -> bool:
    try:
        key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        return False
    return True
