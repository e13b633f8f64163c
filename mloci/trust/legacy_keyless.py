"""cosign v2 *keyless* legacy signatures: a ``.sig`` layer with a Fulcio certificate and a Rekor SET.

``cosign sign`` (v1/v2) without a key writes, on the simple-signing layer of ``sha256-<hex>.sig``,
besides the signature annotation (``dev.cosignproject.cosign/signature``):

- ``dev.sigstore.cosign/certificate``: the Fulcio signing certificate (PEM);
- ``dev.sigstore.cosign/chain``: the intermediate and root (PEM) — a hint only: the chain is
  built from the trusted root's ``certificateAuthorities``, never anchored on this annotation;
- ``dev.sigstore.cosign/bundle``: the Rekor v1 inclusion promise,
  ``{"SignedEntryTimestamp": b64, "Payload": {"body": b64, "integratedTime", "logIndex", "logID": hex}}``.

Verified offline against a ``trusted_root.json`` with ``cryptography`` only (no ``sigstore``
package): the SET by a Rekor key of the root valid at the integrated time; the logged
``hashedrekord`` is this payload's SHA-256, this signature and this certificate; the certificate
chains to a Fulcio CA of the root valid at the integrated time (every certificate of the path
valid then; the leaf for code signing); an embedded SCT (RFC 6962) verifies with a CT log of the
root; the signature verifies over the payload's exact bytes with the certificate's key; and the
certificate's SAN and OIDC issuer match the identity rule.
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
from mloci.trust import Rejected, items, obj, rekor, shown
from mloci.trust.keyless import IdentityRule
from mloci.trust.keys import PublicKey, key_hint, public_key_from_pem, spki_der, verifies

CERTIFICATE_ANNOTATION: Final = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION: Final = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION: Final = "dev.sigstore.cosign/bundle"
_RANK = 6


@dataclass(frozen=True)
class KeylessSignature:
    """Who signed a legacy layer and where it was logged."""

    identity: str
    issuer: str
    log: rekor.LogEvidence


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None


def _pem_certificates(text: str | None) -> list[x509.Certificate]:
    if not text:
        return []
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise Rejected("the certificate annotation is not PEM", 1) from None


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
    leaf: x509.Certificate, hints: list[x509.Certificate], root: dict[str, Any], moment: datetime | None
) -> None:
    assert moment is not None  # noqa: S101  (a Rekor v1 SET always has its integrated time)
    chain = verify_chain(leaf, hints, root, moment)
    verify_sct(leaf, chain[0], root)


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
    raw = annotations.get(BUNDLE_ANNOTATION)
    if not raw:
        raise Rejected(
            f"the layer has no {BUNDLE_ANNOTATION} (Rekor SET): nothing places the short-lived certificate in time",
            _RANK,
        )
    try:
        document = json.loads(raw)
    except ValueError:
        raise Rejected(f"the {BUNDLE_ANNOTATION} annotation is not JSON", _RANK) from None
    promise = _promise(document, root, f"the {BUNDLE_ANNOTATION} annotation")
    _bind(promise.body, hashlib.sha256(payload).hexdigest(), signature, _same_certificate(leaf))
    hints = _pem_certificates(annotations.get(CHAIN_ANNOTATION))
    _check_certificate(leaf, hints, root, promise.evidence.integrated_time)
    return KeylessSignature(shown(identity), shown(issuer), promise.evidence)


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
        _check_certificate(leaf, certificates[1:], root, promise.evidence.integrated_time)
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
