"""Provenance attestations: SLSA Provenance v1 in an in-toto Statement v1, signed in a DSSE envelope.

Formats, as their specifications define them:

- **DSSE** (secure-systems-lab/dsse ``envelope.md``, ``protocol.md`` v1.0.0): the envelope
  ``{"payload": b64, "payloadType": "application/vnd.in-toto+json", "signatures": [{"keyid", "sig"}]}``;
  each ``sig`` signs ``PAE(payloadType, payload)`` =
  ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``. mloci signs with its ECDSA P-256 key
  (ASN.1 DER signature over SHA-256, as cosign); ``keyid`` is a hint only (SHA-256 of the public
  key's DER SubjectPublicKeyInfo), never used to decide anything. Verifiers accept standard and
  URL-safe base64, as the spec requires.
- **in-toto Statement v1** (in-toto/attestation ``spec/v1/statement.md``):
  ``_type`` ``https://in-toto.io/Statement/v1``, ``subject`` = ``[{name: <registry/repository>,
  digest: {sha256: <hex>}}]`` binding the model's manifest digest, ``predicateType``
  ``https://slsa.dev/provenance/v1``.
- **SLSA Provenance v1** (slsa.dev/spec/v1.0/provenance): ``buildDefinition`` {``buildType``,
  ``externalParameters`` (the reference, and the git repository, ref and commit), ``internalParameters``,
  ``resolvedDependencies`` (source commit, training datasets with digests, base image, parent
  model, pinned Python requirements)} and ``runDetails`` {``builder.id``, ``metadata``
  {``invocationId`` (the CI run URL), ``startedOn``, ``finishedOn``}}. ``docs/trust.md`` documents
  the build type.

The envelope is attached to the artifact as an OCI referrer: artifactType and layer media type
``application/vnd.dsse.envelope.v1+json``, annotation ``in-toto.io/predicate-type``.
:func:`verify_attestation` believes an attestation only when a signature by the given key
verifies over the PAE *and* the statement's subject names exactly the artifact's digest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mloci import __version__
from mloci.bundle.manifest import BundleManifest
from mloci.errors import IntegrityError, NotFoundError, RegistryError, UsageError
from mloci.ops._purl import oci_purl, pypi_purl
from mloci.ops.attach import AttachResult, attach_blob
from mloci.ops.inspection import Artifact, inspect
from mloci.ops.promote import ci_run_url
from mloci.ops.referrers import list_referrers
from mloci.ops.sign import Rejected, load_private_key, load_public_key
from mloci.store import Session, Store, scoped
from mloci.types import annotations as ann
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest, canonical_json
from mloci.types.mediatype import DSSE_ENVELOPE
from mloci.types.reference import Reference
from mloci.types.timestamps import rfc3339

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1: Final = "https://slsa.dev/provenance/v1"
IN_TOTO_PAYLOAD: Final = "application/vnd.in-toto+json"
PREDICATE_TYPE_ANNOTATION: Final = "in-toto.io/predicate-type"
BUILD_TYPE: Final = "https://github.com/mloci/mloci/blob/main/docs/trust.md#build-type-v1"
LOCAL_BUILDER: Final = "https://github.com/mloci/mloci/blob/main/docs/trust.md#builder-local-v1"
BUILDER_ENV: Final = "MLOCI_BUILDER_ID"

# Image annotations mloci image build writes (mloci.ops.image), read back as dependencies.
_BASE_NAME = "org.opencontainers.image.base.name"
_BASE_DIGEST = "org.opencontainers.image.base.digest"
_MODEL_DIGEST = "dev.mloci.model.digest"
# Envelopes are a few KiB; a larger blob is refused unread.
_MAX_ENVELOPE = 16 << 20
_LAYER_TITLE = "provenance.dsse.json"


# -- DSSE ----------------------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of ``payload_type`` and ``payload``."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """A hint naming ``key``: the SHA-256 (hex) of its DER SubjectPublicKeyInfo."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE: verifiers MUST accept either)."""
    padded = text + "=" * (-len(text) % 4)
    if "-" in text or "_" in text:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    return base64.b64decode(padded.encode("ascii"), validate=True)


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

    def to_json(self) -> bytes:
        return canonical_json(
            {
                "payload": base64.b64encode(self.payload).decode(),
                "payloadType": self.payload_type,
                "signatures": [
                    {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures
                ],
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        """Parse an envelope; ValueError when it is not one (the fields DSSE requires are missing)."""
        document = json.loads(data)
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
            parsed.append(Signature(keyid=str(keyid), sig=_b64decode(item["sig"])))
        return cls(payload_type=payload_type, payload=_b64decode(payload), signatures=tuple(parsed))


def sign_envelope(
    payload: bytes, key: ec.EllipticCurvePrivateKey, payload_type: str = IN_TOTO_PAYLOAD
) -> Envelope:
    """A DSSE envelope of ``payload`` with one ECDSA P-256 signature over its PAE."""
    sig = key.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
    return Envelope(payload_type, payload, (Signature(key_id(key.public_key()), sig),))


def signed_by(envelope: Envelope, key: ec.EllipticCurvePublicKey) -> bool:
    """Whether any signature of ``envelope`` verifies with ``key`` over the PAE (keyid is ignored)."""
    message = pae(envelope.payload_type, envelope.payload)
    for signature in envelope.signatures:
        try:
            key.verify(signature.sig, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return True
    return False


# -- where the model came from -------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The source the artifact was built from, as far as the manifest, CI and git tell."""

    repository: str | None = None
    ref: str | None = None
    commit: str | None = None


def redact_url(url: str) -> str:
    """``url`` without user or password (a token in a git remote URL must not be published)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.netloc or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _git(cwd: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, "-C", str(cwd), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def detect_source(commit: str | None, cwd: Path | None = None) -> Source:
    """Repository URL, ref and commit: the manifest's commit first, then CI variables, then git in ``cwd``.

    The work tree's remote and branch are used only when its HEAD is the commit the model
    records (or the model records none): a checkout of something else says nothing about it.
    """
    env = os.environ
    repository: str | None = None
    ref: str | None = None
    if env.get("GITHUB_REPOSITORY"):
        repository = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}"
        ref = env.get("GITHUB_REF") or None
        commit = commit or env.get("GITHUB_SHA") or None
    elif env.get("CI_PROJECT_URL"):
        repository = env["CI_PROJECT_URL"]
        ref = env.get("CI_COMMIT_REF_NAME") or None
        commit = commit or env.get("CI_COMMIT_SHA") or None
    work = cwd or Path.cwd()
    head = _git(work, "rev-parse", "--verify", "--quiet", "HEAD")
    if head and (commit is None or head == commit):
        commit = head
        repository = repository or _git(work, "remote", "get-url", "origin")
        ref = ref or _git(work, "symbolic-ref", "--quiet", "HEAD")
    return Source(repository=redact_url(repository) if repository else None, ref=ref, commit=commit)


def detect_builder() -> str:
    """``builder.id``: $MLOCI_BUILDER_ID, else the CI platform's runner, else mloci on a workstation."""
    env = os.environ
    if env.get(BUILDER_ENV):
        return env[BUILDER_ENV]
    if env.get("GITHUB_ACTIONS") == "true":
        hosted = env.get("RUNNER_ENVIRONMENT") == "github-hosted"
        return f"https://github.com/actions/runner/{'github-hosted' if hosted else 'self-hosted'}"
    if env.get("GITLAB_CI") and env.get("CI_SERVER_URL") and env.get("CI_RUNNER_ID"):
        return f"{env['CI_SERVER_URL']}/{env.get('CI_PROJECT_PATH', '')}/-/runners/{env['CI_RUNNER_ID']}"
    return LOCAL_BUILDER


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
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": reference.name,
                "uri": oci_purl(name, info.digest, reference),
                "digest": {info.digest.algorithm: info.digest.encoded},
            }
        ],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": _resolved_dependencies(info, manifest, source),
            },
            "runDetails": {
                "builder": {"id": builder_id, "version": {"mloci": __version__}},
                "metadata": metadata,
            },
        },
    }


# -- attest --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttestResult:
    reference: Reference  # the attested artifact, pinned
    digest: Digest
    statement: dict[str, Any]
    envelope: Envelope
    attached: AttachResult

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "predicateType": self.statement["predicateType"],
            "attestation": str(self.attached.reference),
            "attestationDigest": str(self.attached.digest),
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
    session: Session | None = None,
) -> AttestResult:
    """Sign SLSA provenance for the manifest ``reference`` names and attach it as a referrer."""
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
    envelope = sign_envelope(canonical_json(statement), key)
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
    return AttestResult(info.reference, info.digest, statement, envelope, attached)


# -- verify --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedAttestation:
    digest: Digest  # the attestation manifest
    predicate_type: str
    statement: dict[str, Any]

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


def _fetch_envelope(store: Store, repo: Reference, subject: Digest, entry: Descriptor) -> bytes:
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
        with store.open_blob(repo.repository, layers[0]) as chunks:
            return b"".join(chunks)
    except IntegrityError:
        raise Rejected(f"envelope {layers[0].digest.short} does not match its digest (tampered)", 1) from None
    except NotFoundError:
        raise Rejected(f"envelope {layers[0].digest.short} is missing", 0) from None


def _check_statement(
    data: bytes, key: ec.EllipticCurvePublicKey, digest: Digest, predicate_type: str | None
) -> tuple[str, dict[str, Any]]:
    try:
        envelope = Envelope.from_json(data)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise Rejected(f"not a DSSE envelope ({exc})", 1) from None
    if not signed_by(envelope, key):
        raise Rejected("signature does not match (the envelope was altered or signed by another key)", 2)
    # Only bytes vouched for by the key are parsed from here on.
    if envelope.payload_type != IN_TOTO_PAYLOAD:
        raise Rejected(f"payload type is {envelope.payload_type!r}, not {IN_TOTO_PAYLOAD!r}", 3)
    try:
        statement = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError):
        raise Rejected("the signed payload is not JSON", 3) from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise Rejected(f"the signed payload is not an in-toto Statement v1 ({STATEMENT_TYPE})", 3)
    kind = statement.get("predicateType")
    if not isinstance(kind, str) or (predicate_type is not None and kind != predicate_type):
        raise Rejected(f"predicate type is {kind!r}, not {predicate_type!r}", 4)
    subjects = statement.get("subject")
    bound = [
        s.get("digest", {}).get(digest.algorithm)
        for s in (subjects if isinstance(subjects, list) else [])
        if isinstance(s, dict) and isinstance(s.get("digest"), dict)
    ]
    if digest.encoded not in bound:
        names = ", ".join(f"{digest.algorithm}:{str(b)[:12]}…" for b in bound if b) or "nothing"
        raise Rejected(f"the statement's subject is {names}, not this artifact", 5)
    return kind, statement


def verify_attestation(
    reference: Reference,
    public_key: Path | ec.EllipticCurvePublicKey,
    *,
    predicate_type: str | None = SLSA_PROVENANCE_V1,
    session: Session | None = None,
) -> AttestationVerifyResult:
    """The attestations on exactly the manifest ``reference`` names that verify with ``public_key``.

    One counts when a DSSE signature by the key verifies over the PAE of its payload, the payload
    is an in-toto Statement v1 of ``predicate_type`` (None: any), and the statement's subject names
    this artifact's digest. IntegrityError when none counts, with the reason of the one that came
    closest.
    """
    key = load_public_key(public_key) if isinstance(public_key, Path) else public_key
    if reference.tag is None and reference.digest is None:
        raise UsageError(f"{reference} names no tag or digest", hint="add :TAG or @sha256:…")
    with scoped(session) as active:
        store = active.store(reference)
        digest = store.resolve(reference).digest
        repo = reference.with_tag(None).with_digest(None)
        entries = list_referrers(store, repo, digest, DSSE_ENVELOPE)
        if not entries:
            raise IntegrityError(f"{reference.name}@{digest} has no attestation")
        valid: list[VerifiedAttestation] = []
        closest: Rejected | None = None
        for entry in entries:
            try:
                data = _fetch_envelope(store, repo, digest, entry)
                kind, statement = _check_statement(data, key, digest, predicate_type)
            except Rejected as rejected:
                if closest is None or rejected.rank > closest.rank:
                    closest = rejected
                continue
            valid.append(VerifiedAttestation(entry.digest, kind, statement))
        if not valid:
            reason = closest.reason if closest else "no usable attestation"
            checked = f" ({len(entries)} checked)" if len(entries) > 1 else ""
            raise IntegrityError(f"no attestation for {digest} verifies: {reason}{checked}")
        return AttestationVerifyResult(reference.pinned(digest), digest, tuple(valid), len(entries))


def statement_of(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The statement inside an envelope document, *unverified* (for display and tests)."""
    value = json.loads(_b64decode(str(envelope["payload"])))
    if not isinstance(value, dict):
        raise ValueError("the payload is not a JSON object")
    return value
