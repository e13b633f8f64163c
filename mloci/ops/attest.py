"""Provenance attestations: SLSA Provenance v1 in an in-toto Statement v1, signed in a DSSE envelope.

The wire formats are :mod:`mloci.trust.dsse` and :mod:`mloci.trust.intoto`; this module maps a
model to provenance (``docs/trust.md`` documents the build type: the reference, git repository,
ref and commit; training datasets, base image, parent model and pinned Python requirements as
resolved dependencies; the CI run) and attaches and verifies attestations.

The statement's ``subject`` is ``[{name: <registry/repository>, uri: <purl>, digest: {sha256: <hex>}}]``,
binding the model's manifest digest. The envelope is attached to the artifact as an OCI referrer:
artifactType and layer media type ``application/vnd.dsse.envelope.v1+json``, annotation
``in-toto.io/predicate-type``. :func:`verify_attestation` believes an attestation only when a
signature by the given key verifies over the PAE *and* the statement's subject names exactly the
artifact's digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from mloci import __version__
from mloci.buildenv import LOCAL_BUILDER, Source, ci_run_url, detect_builder, detect_source, redact_url
from mloci.bundle.manifest import BundleManifest
from mloci.errors import IntegrityError, NotFoundError, RegistryError, UsageError
from mloci.ops._purl import oci_purl, pypi_purl
from mloci.ops.attach import AttachResult, attach_blob
from mloci.ops.inspection import Artifact, inspect
from mloci.ops.referrers import list_referrers
from mloci.ops.sign import bundle_referrers, fetch_bundle
from mloci.store import Session, Store, read_small_blob, scoped
from mloci.trust import Rejected, legacy_keyless
from mloci.trust.bundle import BUNDLE_V03, CONTENT_ANNOTATION, PREDICATE_ANNOTATION, dsse_bundle_of
from mloci.trust.dsse import IN_TOTO_PAYLOAD, Envelope, Signature, b64decode, pae, sign_envelope, signed_by
from mloci.trust.intoto import (
    COSIGN_SIGN_V1,
    SLSA_PROVENANCE_V1,
    STATEMENT_TYPE,
    check_statement,
    slsa_provenance,
)
from mloci.trust.keyless import IdentityRule
from mloci.trust.keys import PublicKey, key_id, load_private_key
from mloci.trust.verifier import TrustRule, keyless_root, verify_bundle_bytes, verify_envelope
from mloci.types import annotations as ann
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.json import JSONObject
from mloci.types.manifest import Descriptor, Manifest, canonical_json
from mloci.types.mediatype import DSSE_ENVELOPE
from mloci.types.reference import Reference
from mloci.types.timestamps import rfc3339

__all__ = [
    "IN_TOTO_PAYLOAD",
    "LOCAL_BUILDER",
    "SLSA_PROVENANCE_V1",
    "STATEMENT_TYPE",
    "AttestResult",
    "AttestationVerifyResult",
    "Envelope",
    "Signature",
    "Source",
    "VerifiedAttestation",
    "attest",
    "detect_builder",
    "detect_source",
    "key_id",
    "pae",
    "provenance_statement",
    "redact_url",
    "sign_envelope",
    "signed_by",
    "statement_of",
    "verify_attestation",
]

PREDICATE_TYPE_ANNOTATION: Final = "in-toto.io/predicate-type"
BUILD_TYPE: Final = "https://github.com/mloci/mloci/blob/main/docs/trust.md#build-type-v1"

# Image annotations mloci image build writes (mloci.ops.image), read back as dependencies.
_BASE_NAME = "org.opencontainers.image.base.name"
_BASE_DIGEST = "org.opencontainers.image.base.digest"
_MODEL_DIGEST = "dev.mloci.model.digest"
# Envelopes are a few KiB; a larger blob is refused unread.
_MAX_ENVELOPE = 16 << 20
_LAYER_TITLE = "provenance.dsse.json"


# -- the statement -------------------------------------------------------------------------------


_rfc3339 = rfc3339


def _bundle_manifest(info: Artifact) -> BundleManifest | None:
    return info.bundle


def _sha256_map(digest: Digest | None) -> dict[str, str] | None:
    return {digest.algorithm: digest.encoded} if digest is not None else None


def _resolved_dependencies(
    info: Artifact, manifest: BundleManifest | None, source: Source
) -> list[dict[str, Any]]:
    deps: list[dict[str, Any]] = []
    if source.commit:
        git: dict[str, Any] = {"digest": {"gitCommit": source.commit}}
        if source.repository:
            uri = source.repository if source.repository.startswith("git+") else f"git+{source.repository}"
            git["uri"] = f"{uri}@{source.ref}" if source.ref else uri
        deps.append(git)
    annotations = info.annotations
    base_name, base_digest = annotations.get(_BASE_NAME), annotations.get(_BASE_DIGEST)
    if base_name and base_digest:
        deps.append(
            {
                "uri": f"oci://{base_name}",
                "digest": _sha256_map(Digest.parse(base_digest)),
                "annotations": {"role": "base-image"},
            }
        )
    if annotations.get(_MODEL_DIGEST):
        deps.append(
            {
                "digest": _sha256_map(Digest.parse(annotations[_MODEL_DIGEST])),
                "annotations": {"role": "model"},
            }
        )
    if manifest is None:
        return deps
    if manifest.lineage:
        for dataset in manifest.lineage.datasets:
            entry: dict[str, Any] = {"uri": dataset.uri}
            if dataset.name:
                entry["name"] = dataset.name
            if dataset.digest:
                entry["digest"] = _sha256_map(dataset.digest)
            entry["annotations"] = {"role": "dataset", **({"split": dataset.split} if dataset.split else {})}
            deps.append(entry)
        if manifest.lineage.parent_model:
            deps.append({"uri": manifest.lineage.parent_model, "annotations": {"role": "parent-model"}})
    for requirement in manifest.dependencies.requirements if manifest.dependencies else []:
        parsed = pypi_purl(requirement)
        if parsed is not None:
            deps.append({"uri": parsed[2], "name": parsed[0]})
    return deps


def provenance_statement(
    reference: Reference,
    info: Artifact,
    *,
    builder_id: str,
    source: Source,
    invocation_id: str | None,
    started_on: datetime,
    finished_on: datetime,
) -> dict[str, Any]:
    """The in-toto Statement v1 carrying SLSA Provenance v1 for the artifact ``info`` describes."""
    manifest = _bundle_manifest(info)
    external: dict[str, Any] = {"reference": str(reference)}
    if source.repository:
        external["repository"] = source.repository
    if source.ref:
        external["ref"] = source.ref
    if source.commit:
        external["commit"] = source.commit
    internal: dict[str, Any] = {"artifactType": info.artifact_type or info.media_type}
    if manifest is not None:
        values = {
            "framework": manifest.framework,
            "python": manifest.python,
            "gitDirty": manifest.git_dirty,
            "trainingRun": manifest.lineage.training_run if manifest.lineage else None,
            "trainTime": _rfc3339(manifest.train_time) if manifest.train_time else None,
        }
        internal.update({k: v for k, v in values.items() if v is not None})
    metadata: dict[str, Any] = {"startedOn": _rfc3339(started_on), "finishedOn": _rfc3339(finished_on)}
    if invocation_id:
        metadata["invocationId"] = invocation_id
    name = manifest.name if manifest else reference.repository.rsplit("/", 1)[-1]
    subject = {
        "name": reference.name,
        "uri": oci_purl(name, info.digest, reference),
        "digest": {info.digest.algorithm: info.digest.encoded},
    }
    predicate = slsa_provenance(
        build_type=BUILD_TYPE,
        external=external,
        internal=internal,
        resolved_dependencies=_resolved_dependencies(info, manifest, source),
        builder_id=builder_id,
        builder_version={"mloci": __version__},
        metadata=metadata,
    )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": predicate,
    }


# -- attest --------------------------------------------------------------------------------------


AttestFormat = Literal["bundle", "dsse", "both"]
ATTEST_FORMATS: tuple[AttestFormat, ...] = ("bundle", "dsse", "both")


@dataclass(frozen=True)
class AttestResult:
    reference: Reference  # the attested artifact, pinned
    digest: Digest
    statement: JSONObject  # the in-toto statement as signed (its predicate is free-form)
    envelope: Envelope
    attached: AttachResult  # the first written: the DSSE referrer, else the bundle
    bundle: AttachResult | None = None  # the sigstore bundle referrer, when one was written

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "predicateType": self.statement["predicateType"],
            "attestation": str(self.attached.reference),
            "attestationDigest": str(self.attached.digest),
            "bundle": str(self.bundle.reference) if self.bundle else None,
            "keyid": self.envelope.signatures[0].keyid,
            "statement": self.statement,
        }


def attest(
    reference: Reference,
    key_path: Path,
    password: bytes | None,
    *,
    builder_id: str | None = None,
    started_on: datetime | None = None,
    ci_url: str | None = None,
    cwd: Path | None = None,
    format: AttestFormat = "bundle",
    session: Session | None = None,
) -> AttestResult:
    """Sign SLSA provenance for the manifest ``reference`` names and attach it as a referrer.

    ``format``: ``bundle`` (the default, as ``sign``: a key-based sigstore bundle around the DSSE
    envelope, as ``cosign attest`` v3 writes), ``dsse`` (the envelope itself,
    ``application/vnd.dsse.envelope.v1+json``, for readers of cosign v2's ``.att`` layers) or ``both``.
    """
    if format not in ATTEST_FORMATS:
        raise UsageError(
            f"unknown attestation format {format!r}", hint=f"use one of {', '.join(ATTEST_FORMATS)}"
        )
    started = started_on or datetime.now(UTC)
    if reference.tag is None and reference.digest is None:
        raise UsageError(f"{reference} names no tag or digest", hint="add :TAG or @sha256:…")
    key = load_private_key(key_path, password)
    info = inspect(reference, session=session)
    manifest = _bundle_manifest(info)
    statement = provenance_statement(
        reference,
        info,
        builder_id=builder_id or detect_builder(),
        source=detect_source(manifest.git_sha if manifest else info.annotations.get(ann.REVISION), cwd),
        invocation_id=ci_url or ci_run_url(),
        started_on=started,
        finished_on=datetime.now(UTC),
    )
    payload = canonical_json(statement)
    envelope = sign_envelope(payload, key)
    attached: AttachResult | None = None
    bundled: AttachResult | None = None
    if format != "bundle":
        data = envelope.to_json()
        layer = Descriptor.of_bytes(
            DSSE_ENVELOPE,
            data,
            annotations={PREDICATE_TYPE_ANNOTATION: SLSA_PROVENANCE_V1, ann.TITLE: _LAYER_TITLE},
        )
        attached = attach_blob(
            info.reference,  # pinned: the attestation goes to exactly what was described
            Blob(layer, data=data),
            artifact_type=DSSE_ENVELOPE,
            annotations={PREDICATE_TYPE_ANNOTATION: SLSA_PROVENANCE_V1},
            session=session,
        )
    if format != "dsse":
        data = dsse_bundle_of(envelope, key.public_key())
        title = f"sha256-{Digest.of(data).encoded}.sigstore.json"
        layer = Descriptor.of_bytes(BUNDLE_V03, data, annotations={ann.TITLE: title})
        bundled = attach_blob(
            info.reference,
            Blob(layer, data=data),
            artifact_type=BUNDLE_V03,
            annotations={CONTENT_ANNOTATION: "dsse-envelope", PREDICATE_ANNOTATION: SLSA_PROVENANCE_V1},
            session=session,
        )
    first = attached or bundled
    assert first is not None  # noqa: S101
    return AttestResult(info.reference, info.digest, statement, envelope, first, bundled)


# -- verify --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedAttestation:
    digest: Digest  # the attestation manifest
    predicate_type: str
    statement: JSONObject  # the in-toto statement as signed (its predicate is free-form)

    def to_json(self) -> dict[str, Any]:
        return {"digest": str(self.digest), "predicateType": self.predicate_type, "statement": self.statement}


@dataclass(frozen=True)
class AttestationVerifyResult:
    reference: Reference  # pinned
    digest: Digest
    attestations: tuple[VerifiedAttestation, ...]
    checked: int

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "verified": True,
            "attestations": [a.to_json() for a in self.attestations],
            "checked": self.checked,
        }


def fetch_envelope(store: Store, repo: Reference, subject: Digest, entry: Descriptor) -> bytes:
    """The DSSE envelope bytes of referrer ``entry``; Rejected unless it is one envelope attached to ``subject``."""
    try:
        _, data = store.fetch_manifest(repo.with_tag(None).with_digest(entry.digest))
        manifest = Manifest.from_json(data)
    except NotFoundError:
        raise Rejected(f"attestation {entry.digest.short} is listed but missing", 0) from None
    except RegistryError:
        raise Rejected(f"attestation {entry.digest.short} is not an image manifest", 0) from None
    if manifest.subject is None or manifest.subject.digest != subject:
        raise Rejected(f"attestation {entry.digest.short} is attached to another artifact", 0)
    layers = [layer for layer in manifest.layers if layer.media_type == DSSE_ENVELOPE]
    if len(layers) != 1:
        raise Rejected(f"attestation {entry.digest.short} holds {len(layers)} DSSE envelopes, not one", 0)
    if layers[0].size > _MAX_ENVELOPE:
        raise Rejected(f"attestation {entry.digest.short} is larger than {_MAX_ENVELOPE} bytes", 0)
    try:
        return read_small_blob(store, repo.repository, layers[0], limit=_MAX_ENVELOPE)
    except IntegrityError:
        raise Rejected(f"envelope {layers[0].digest.short} does not match its digest (tampered)", 1) from None
    except NotFoundError:
        raise Rejected(f"envelope {layers[0].digest.short} is missing", 0) from None


def _legacy_envelopes(store: Store, repo: Reference, digest: Digest) -> list[Descriptor]:
    """The DSSE layers of cosign's legacy ``sha256-<hex>.att`` image (``cosign attest`` v1/v2), if any."""
    try:
        _, data = store.fetch_manifest(repo.with_tag(f"{digest.algorithm}-{digest.encoded}.att"))
        manifest = Manifest.from_json(data)
    except (NotFoundError, RegistryError):
        return []
    return [layer for layer in manifest.layers if layer.media_type == DSSE_ENVELOPE]


def _verify_keyless_layer(
    data: bytes, layer: Descriptor, rule: TrustRule, digest: Digest, predicate_type: str | None
) -> tuple[str, dict[str, Any]]:
    """A cosign v1/v2 keyless ``.att`` layer (:func:`mloci.trust.legacy_keyless.verify_attestation_layer`)."""
    assert rule.identity is not None  # noqa: S101
    annotations = layer.annotations or {}
    if legacy_keyless.CERTIFICATE_ANNOTATION not in annotations:
        raise Rejected("a legacy .att attestation made with a key: verify it with --key", 0)
    checked = legacy_keyless.verify_attestation_layer(
        data, annotations, rule.identity, keyless_root(rule.trusted_root)
    )
    envelope = checked.envelope
    return check_statement(envelope.payload_type, envelope.payload, digest, predicate_type, legacy=True)


def verify_attestation(
    reference: Reference,
    public_key: Path | PublicKey | None = None,
    *,
    identity: IdentityRule | None = None,
    trusted_root: Path | None = None,
    predicate_type: str | None = SLSA_PROVENANCE_V1,
    session: Session | None = None,
) -> AttestationVerifyResult:
    """The attestations on exactly the manifest ``reference`` names that verify with the key or identity.

    These count: DSSE envelope referrers (mloci ``attest --format dsse``), sigstore bundle
    referrers holding a DSSE in-toto statement (``cosign attest`` v3, mloci ``attest``; keyless
    ones with ``identity``) and the DSSE layers of cosign v1/v2's ``sha256-<hex>.att`` image (in-toto
    v0.1 statements accepted there): with a key, or with ``identity`` when the layer carries cosign's
    certificate annotations and a Rekor bundle or RFC 3161 timestamp (:mod:`mloci.trust.legacy_keyless`). One counts when a signature verifies over the PAE of
    its payload, the payload is an in-toto Statement v1 of ``predicate_type`` (None: any but
    cosign's image-signature type), and the statement's subject names this artifact's digest.
    IntegrityError when none counts, with the reason of the one that came closest.
    """
    rule = TrustRule.of(public_key, identity, trusted_root)
    if reference.tag is None and reference.digest is None:
        raise UsageError(f"{reference} names no tag or digest", hint="add :TAG or @sha256:…")
    with scoped(session) as active:
        store = active.store(reference)
        # As cosign: a digest is what is verified, whether or not the registry holds its manifest.
        digest = reference.digest if reference.digest is not None else store.resolve(reference).digest
        repo = reference.with_tag(None).with_digest(None)
        envelopes = list_referrers(store, repo, digest, DSSE_ENVELOPE) if rule.key is not None else []
        bundles = bundle_referrers(store, repo, digest)
        legacy = _legacy_envelopes(store, repo, digest)
        if not envelopes and not bundles and not legacy:
            raise IntegrityError(f"{reference.name}@{digest} has no attestation")
        valid: list[VerifiedAttestation] = []
        closest: Rejected | None = None
        checked = 0
        for entry in envelopes:
            checked += 1
            try:
                assert rule.key is not None  # noqa: S101
                data = fetch_envelope(store, repo, digest, entry)
                kind, statement = verify_envelope(data, rule.key, digest, predicate_type)
            except Rejected as rejected:
                if closest is None or rejected.rank > closest.rank:
                    closest = rejected
                continue
            valid.append(VerifiedAttestation(entry.digest, kind, statement))
        for layer in legacy:
            checked += 1
            try:
                if layer.size > _MAX_ENVELOPE:
                    raise Rejected(f"envelope {layer.digest.short} is larger than {_MAX_ENVELOPE} bytes", 0)
                try:
                    data = read_small_blob(store, repo.repository, layer, limit=_MAX_ENVELOPE)
                except IntegrityError:
                    raise Rejected(f"envelope {layer.digest.short} does not match its digest", 1) from None
                except NotFoundError:
                    raise Rejected(f"envelope {layer.digest.short} is missing", 0) from None
                # cosign's .att layers: in-toto v0.1 statements, early cosign's payloadType quirk.
                if rule.identity is not None:
                    kind, statement = _verify_keyless_layer(data, layer, rule, digest, predicate_type)
                else:
                    assert rule.key is not None  # noqa: S101
                    kind, statement = verify_envelope(data, rule.key, digest, predicate_type, legacy=True)
            except Rejected as rejected:
                if closest is None or rejected.rank > closest.rank:
                    closest = rejected
                continue
            valid.append(VerifiedAttestation(layer.digest, kind, statement))
        for entry in bundles:
            try:
                data = fetch_bundle(store, repo, digest, entry)
                verified = verify_bundle_bytes(data, digest, rule, predicate_type=predicate_type)
                if verified.statement is None or verified.predicate_type is None:
                    raise Rejected("the bundle holds a message signature, not an attestation", 3)
                if predicate_type is None and verified.predicate_type == COSIGN_SIGN_V1:
                    continue  # an image signature, not an attestation
            except Rejected as rejected:
                checked += 1
                if closest is None or rejected.rank > closest.rank:
                    closest = rejected
                continue
            checked += 1
            valid.append(VerifiedAttestation(entry.digest, verified.predicate_type, verified.statement))
        if not valid:
            if checked == 0:
                raise IntegrityError(f"{reference.name}@{digest} has no attestation")
            reason = closest.reason if closest else "no usable attestation"
            many = f" ({checked} checked)" if checked > 1 else ""
            raise IntegrityError(
                f"no attestation for {digest} verifies: {reason}{many}",
                hint=closest.advice if closest else None,
            )
        return AttestationVerifyResult(reference.pinned(digest), digest, tuple(valid), checked)


def statement_of(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The statement inside an envelope document, *unverified* (for display and tests)."""
    value = json.loads(b64decode(str(envelope["payload"])))
    if not isinstance(value, dict):
        raise ValueError("the payload is not a JSON object")
    return value
