"""PEP 740 provenance for registry files, from the keyless sigstore bundles attached to a release.

A PEP 740 attestation is a sigstore bundle in other clothes: the Fulcio certificate
(``verification_material.certificate``, base64 DER), the Rekor entries as the bundle holds them
(``transparency_entries``), and the DSSE envelope's in-toto statement and its one signature
(``envelope.statement``/``envelope.signature``, base64). Only bundles that say something about
one *file* convert: a DSSE envelope of ``application/vnd.in-toto+json`` with exactly one signature,
a certificate and a transparency-log entry, whose statement has exactly one subject naming the
file (its name and sha256) with a predicate type PEP 740 knows (PyPI publish v1 or SLSA
provenance v1). Signatures of the release manifest (``mloci sign``) name the manifest, not a
file, and key-based bundles have no certificate: PEP 740 cannot express either.

Attestations are grouped by publisher, read from the certificate's Fulcio extensions as
pypi-attestations models them (GitHub, GitLab, Google); another identity becomes a publisher of
kind ``Sigstore`` with its identity and issuer as claims. Nothing here is verified: clients verify
(``pypi-attestations verify``, sigstore), as PEP 740 intends.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509

from mloci.trust.bundle import BUNDLE_V03, Bundle
from mloci.trust.dsse import IN_TOTO_PAYLOAD
from mloci.trust.intoto import SLSA_PROVENANCE_V1, STATEMENT_TYPE
from mloci.trust.keyless import certificate_identities, certificate_issuer

MEDIA_TYPE: Final = "application/vnd.pypi.integrity.v1+json"
PYPI_PUBLISH_V1: Final = "https://docs.pypi.org/attestations/publish/v1"
PREDICATE_TYPES: Final = (PYPI_PUBLISH_V1, SLSA_PROVENANCE_V1)

_SOURCE_REPOSITORY_URI: Final = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.12")
_BUILD_CONFIG_URI: Final = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.18")
_GITHUB: Final = "https://token.actions.githubusercontent.com"
_GITLAB: Final = "https://gitlab.com"
_GOOGLE: Final = "https://accounts.google.com"


@dataclass(frozen=True)
class FileAttestation:
    """One PEP 740 attestation object and the publisher it belongs to."""

    attestation: dict[str, Any]
    publisher: dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _fulcio_text(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    """A Fulcio extension holding a DER UTF8String (1.3.6.1.4.1.57264.1.8 and later)."""
    try:
        value = certificate.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    if len(raw) < 2 or raw[0] != 0x0C:
        return None
    length, offset = raw[1], 2
    if length & 0x80:  # long form
        size = length & 0x7F
        length, offset = int.from_bytes(raw[2 : 2 + size], "big"), 2 + size
    try:
        return raw[offset : offset + length].decode()
    except UnicodeDecodeError:
        return None


def publisher_of(certificate: x509.Certificate) -> dict[str, Any]:
    """The PEP 740 publisher for a Fulcio certificate, in pypi-attestations' shapes where one fits."""
    issuer = certificate_issuer(certificate) or ""
    repository_uri = _fulcio_text(certificate, _SOURCE_REPOSITORY_URI) or ""
    build_config = (_fulcio_text(certificate, _BUILD_CONFIG_URI) or "").partition("@")[0]
    if issuer == _GITHUB and repository_uri.startswith("https://github.com/"):
        repository = repository_uri.removeprefix("https://github.com/")
        workflow = build_config.rpartition("/.github/workflows/")[2]
        if repository and workflow:
            return {"kind": "GitHub", "repository": repository, "workflow": workflow, "environment": None}
    if issuer == _GITLAB and repository_uri.startswith("https://gitlab.com/"):
        repository = repository_uri.removeprefix("https://gitlab.com/")
        workflow_filepath = build_config.partition("//")[2]
        if repository and workflow_filepath:
            return {
                "kind": "GitLab",
                "repository": repository,
                "workflow_filepath": workflow_filepath,
                "environment": None,
            }
    identities = certificate_identities(certificate)
    if issuer == _GOOGLE and identities:
        return {"kind": "Google", "email": identities[0]}
    return {
        "kind": "Sigstore",
        "claims": {"identity": identities[0] if identities else None, "issuer": issuer},
    }


def attestation_for(data: bytes, filename: str, sha256: str) -> FileAttestation | None:
    """The PEP 740 attestation a sigstore bundle makes about ``filename``, or None when it makes none."""
    try:
        bundle = Bundle.from_json(data)
    except ValueError:
        return None
    envelope = bundle.envelope
    if (
        envelope is None
        or envelope.payload_type != IN_TOTO_PAYLOAD
        or len(envelope.signatures) != 1
        or bundle.certificate is None
        or not bundle.tlog_entries
    ):
        return None
    try:
        statement = json.loads(envelope.payload)
        certificate = x509.load_der_x509_certificate(bundle.certificate)
    except (ValueError, RecursionError):
        return None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        return None
    subjects = statement.get("subject")
    if (
        statement.get("predicateType") not in PREDICATE_TYPES
        or not isinstance(subjects, list)
        or len(subjects) != 1
    ):
        return None
    subject = subjects[0]
    digest = subject.get("digest") if isinstance(subject, dict) else None
    if not isinstance(subject, dict) or subject.get("name") != filename or not isinstance(digest, dict):
        return None
    if digest.get("sha256") != sha256:
        return None
    attestation = {
        "version": 1,
        "verification_material": {
            "certificate": _b64(bundle.certificate),
            "transparency_entries": [dict(entry) for entry in bundle.tlog_entries],
        },
        "envelope": {"statement": _b64(envelope.payload), "signature": _b64(envelope.signatures[0].sig)},
    }
    try:
        publisher = publisher_of(certificate)
    except ValueError:  # extensions that do not parse: no certificate Fulcio issued
        return None
    return FileAttestation(attestation, publisher)


def provenance(attestations: Iterable[FileAttestation]) -> dict[str, Any] | None:
    """The PEP 740 provenance object: attestation bundles, one per publisher; None without any."""
    bundles: list[dict[str, Any]] = []
    for item in attestations:
        for entry in bundles:
            if entry["publisher"] == item.publisher:
                entry["attestations"].append(item.attestation)
                break
        else:
            bundles.append({"publisher": item.publisher, "attestations": [item.attestation]})
    return {"version": 1, "attestation_bundles": bundles} if bundles else None


def document(attestations: Sequence[FileAttestation]) -> bytes:
    value = provenance(attestations)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def bundle_of(attestation: object) -> bytes:
    """The sigstore bundle (v0.3 JSON) a PEP 740 attestation object stands for; ValueError (one line)
    when it is not one. The inverse of :func:`attestation_for`'s conversion."""
    if not isinstance(attestation, dict) or attestation.get("version") != 1:
        raise ValueError("not a PEP 740 attestation object (version 1)")
    material, envelope = attestation.get("verification_material"), attestation.get("envelope")
    if not isinstance(material, dict) or not isinstance(envelope, dict):
        raise ValueError("verification_material and envelope are required")
    certificate, entries = material.get("certificate"), material.get("transparency_entries")
    statement, signature = envelope.get("statement"), envelope.get("signature")
    if not all(isinstance(v, str) for v in (certificate, statement, signature)):
        raise ValueError("certificate, statement and signature must be base64 strings")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ValueError("transparency_entries must list at least one entry")
    document = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"certificate": {"rawBytes": certificate}, "tlogEntries": entries},
        "dsseEnvelope": {
            "payload": statement,
            "payloadType": IN_TOTO_PAYLOAD,
            "signatures": [{"sig": signature}],
        },
    }
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        Bundle.from_json(data)  # base64 and shape, as a bundle reader will see them
    except ValueError as exc:
        raise ValueError(f"not a valid attestation: {exc}") from None
    return data


def predicate_type(bundle: bytes) -> str | None:
    """The predicate type of a bundle's statement (unverified, for the referrer's annotation)."""
    try:
        return Bundle.from_json(bundle).predicate_type
    except ValueError:
        return None
