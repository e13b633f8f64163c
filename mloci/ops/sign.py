"""Signatures that cosign reads and writes: sigstore bundles (cosign v3) and the legacy ``.sig`` tag.

**Bundles** (the default, as ``cosign sign`` v3 writes them): a sigstore bundle v0.3 holding a
DSSE envelope around an in-toto statement (``predicateType`` ``https://sigstore.dev/cosign/sign/v1``,
subject = the manifest digest), attached as an OCI 1.1 referrer (artifactType and layer media type
``application/vnd.dev.sigstore.bundle.v0.3+json``; cosign ``specs/BUNDLE_SPEC.md``), found through
the referrers API or the referrers tag schema. Verification accepts key-based bundles (checked with
``cryptography``) and keyless ones (a Fulcio certificate, through the ``sigstore`` extra).

**Legacy** (sigstore/cosign ``specs/SIGNATURE_SPEC.md``, cosign v1/v2): storage is cosign's *tag-based discovery*: the signatures of ``repo@sha256:<hex>`` live in one
OCI image manifest tagged ``sha256-<hex>.sig`` in the same repository. Each signature is one
layer of media type ``application/vnd.dev.cosign.simplesigning.v1+json``: its blob is the signed
*simple-signing* payload, and the layer annotation ``dev.cosignproject.cosign/signature`` holds the
base64 of an ASN.1 DER ECDSA P-256 / SHA-256 signature over the payload's exact bytes. A further
signature appends a layer; like cosign, concurrent signers can race (the spec says so), so the
writer re-reads once after writing and merges again if its layer was lost.

The payload binds the artifact's manifest digest (``critical.image.docker-manifest-digest``), so a
signature copied next to another artifact does not verify for it. Payload, config blob and
manifest are shaped as cosign (go-containerregistry) writes them, so ``cosign verify --key`` accepts
what :func:`sign` writes (mloci does not upload to a transparency log: cosign 2 needs
``--insecure-ignore-tlog=true``), and :func:`verify` accepts what ``cosign sign --key`` writes.

The wire format is :mod:`mloci.trust.cosign`, keys are :mod:`mloci.trust.keys`; this module is
the use case over a store.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from mloci.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    UnavailableError,
    UnsupportedError,
    UsageError,
)
from mloci.ops.attach import attach_blob
from mloci.ops.referrers import list_referrers
from mloci.store import Session, Store, scoped
from mloci.trust import Rejected, model_signing, rekor
from mloci.trust.bundle import (
    BUNDLE_PREFIX,
    BUNDLE_V03,
    CONTENT_ANNOTATION,
    PREDICATE_ANNOTATION,
    Bundle,
    Verified,
    image_signature_bundle,
    image_signature_statement,
    verify_with_key,
)
from mloci.trust.cosign import (
    COSIGN_SIGNATURE_TYPE,
    DOCKER_CONFIG,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    check_annotations,
    check_payload,
    config_blob,
    docker_reference,
    signature_tag,
    simple_signing_payload,
)
from mloci.trust.dsse import Envelope, sign_envelope, signed_by
from mloci.trust.intoto import COSIGN_SIGN_V1, check_statement
from mloci.trust.keyless import IdentityRule, trusted_root_path, verify_keyless
from mloci.trust.keys import (
    PrivateKey,
    PublicKey,
    generate_keypair,
    is_encrypted,
    key_hint,
    load_private_key,
    load_public_key,
    sign_bytes,
    verifies,
)
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest, hash_file
from mloci.types.manifest import Descriptor, Manifest
from mloci.types.reference import Reference

__all__ = [
    "COSIGN_SIGNATURE_TYPE",
    "SIGNATURE_ANNOTATION",
    "SIMPLE_SIGNING",
    "Rejected",
    "SignResult",
    "VerifiedSignature",
    "VerifyResult",
    "docker_reference",
    "generate_keypair",
    "is_encrypted",
    "load_private_key",
    "load_public_key",
    "sign",
    "signature_tag",
    "simple_signing_payload",
    "verify",
]

# Payloads are a few hundred bytes; a larger blob is refused unread.
_MAX_PAYLOAD = 1 << 20
_MAX_WRITE_ROUNDS = 5


# -- sign ----------------------------------------------------------------------------------------

SignFormat = Literal["bundle", "legacy", "both"]
SIGN_FORMATS: tuple[SignFormat, ...] = ("bundle", "legacy", "both")
# Bundles are a few KiB (a certificate chain and log proofs at most); a larger blob is refused unread.
_MAX_BUNDLE = 1 << 20


@dataclass(frozen=True)
class SignResult:
    reference: Reference  # the signed artifact, pinned
    digest: Digest
    signature_reference: Reference | None  # legacy: repo:sha256-<hex>.sig@<manifest digest>
    payload_digest: Digest | None  # legacy: the simple-signing payload
    signature: str  # base64 signature (the bundle's when a bundle was written)
    signatures: int  # legacy: layers in the .sig manifest; bundle: bundle referrers by this key
    unchanged: bool  # an equivalent signature by this key was already there
    bundle_reference: Reference | None = None  # the bundle referrer manifest
    format: SignFormat = "legacy"

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "format": self.format,
            "bundleReference": str(self.bundle_reference) if self.bundle_reference else None,
            "signatureReference": str(self.signature_reference) if self.signature_reference else None,
            "payloadDigest": str(self.payload_digest) if self.payload_digest else None,
            "signature": self.signature,
            "signatures": self.signatures,
            "unchanged": self.unchanged,
        }


def _resolve(store: Store, reference: Reference) -> Digest:
    if reference.tag is None and reference.digest is None:
        raise UsageError(f"{reference} names no tag or digest", hint="add :TAG or @sha256:…")
    return store.resolve(reference).digest


def _current_signatures(store: Store, sig_ref: Reference) -> tuple[Manifest | None, Digest | None]:
    try:
        descriptor, data = store.fetch_manifest(sig_ref)
    except NotFoundError:
        return None, None
    if descriptor.media_type in mediatype.INDEX_TYPES:
        raise ConflictError(f"{sig_ref} is not a cosign signature manifest; not overwriting it")
    try:
        return Manifest.from_json(data), descriptor.digest
    except RegistryError:
        raise ConflictError(f"{sig_ref} is not a cosign signature manifest; not overwriting it") from None


def _layer_signed_by(layer: Descriptor, payload_digest: Digest, key: PublicKey, payload: bytes) -> bool:
    if layer.digest != payload_digest or layer.media_type != SIMPLE_SIGNING:
        return False
    encoded = layer.annotation(SIGNATURE_ANNOTATION)
    if encoded is None:
        return False
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    return verifies(key, signature, payload)


def sign(
    reference: Reference,
    key_path: Path,
    password: bytes | None,
    *,
    annotations: Mapping[str, str] | None = None,
    format: SignFormat = "bundle",
    session: Session | None = None,
) -> SignResult:
    """Sign the manifest ``reference`` names, keeping any signatures already there.

    ``format``: ``bundle`` (cosign v3: a sigstore bundle referrer), ``legacy`` (cosign v2: a layer
    of the ``.sig`` tag) or ``both``. ``annotations`` become signed claims: the legacy payload's
    ``optional`` section (``cosign sign -a``), the bundle statement's subject annotations. Signing
    again with the same key and claims changes nothing.
    """
    if format not in SIGN_FORMATS:
        raise UsageError(f"unknown signature format {format!r}", hint=f"use one of {', '.join(SIGN_FORMATS)}")
    claims = check_annotations(annotations or {})
    key = load_private_key(key_path, password)
    with scoped(session) as active:
        store = active.store(reference)
        digest = _resolve(store, reference)
        legacy = _sign_legacy(store, reference, digest, key, claims) if format != "bundle" else None
        bundled = _sign_bundle(store, reference, digest, key, claims, active) if format != "legacy" else None
    if bundled is None:
        assert legacy is not None  # noqa: S101
        return legacy
    if legacy is None:
        return bundled
    return SignResult(
        reference=bundled.reference,
        digest=digest,
        signature_reference=legacy.signature_reference,
        payload_digest=legacy.payload_digest,
        signature=bundled.signature,
        signatures=bundled.signatures,
        unchanged=bundled.unchanged and legacy.unchanged,
        bundle_reference=bundled.bundle_reference,
        format="both",
    )


def _sign_legacy(
    store: Store, reference: Reference, digest: Digest, key: PrivateKey, claims: dict[str, str]
) -> SignResult:
    sig_ref = reference.with_digest(None).with_tag(signature_tag(digest))
    payload = simple_signing_payload(docker_reference(reference), digest, claims)
    payload_blob = Blob.of_bytes(SIMPLE_SIGNING, payload)
    public_key = key.public_key()
    signature = base64.b64encode(sign_bytes(key, payload)).decode()
    layer = payload_blob.descriptor.model_copy(update={"annotations": {SIGNATURE_ANNOTATION: signature}})
    if not store.has_blob(reference.repository, payload_blob.descriptor.digest):
        store.push_blob(reference.repository, payload_blob)
    for round_ in range(_MAX_WRITE_ROUNDS + 1):
        current, current_digest = _current_signatures(store, sig_ref)
        layers = list(current.layers) if current else []
        mine = next(
            (
                existing
                for existing in layers
                if _layer_signed_by(existing, payload_blob.descriptor.digest, public_key, payload)
            ),
            None,
        )
        if mine is not None and current_digest is not None:
            # Ours (written in an earlier round), or an equivalent one this key made before.
            return SignResult(
                reference=reference.pinned(digest),
                digest=digest,
                signature_reference=sig_ref.with_digest(current_digest),
                payload_digest=payload_blob.descriptor.digest,
                signature=mine.annotation(SIGNATURE_ANNOTATION) or signature,
                signatures=len(layers),
                unchanged=round_ == 0,
            )
        if round_ == _MAX_WRITE_ROUNDS:
            break
        # Re-read after writing: another signer may have replaced the manifest without our layer.
        _push_signatures(store, sig_ref, current, [*layers, layer])
    raise ConflictError(
        f"{sig_ref} kept being rewritten by other signers; the signature was not kept",
        hint="sign again",
        temporary=True,
    )


def _push_signatures(
    store: Store, sig_ref: Reference, current: Manifest | None, layers: list[Descriptor]
) -> None:
    """Write the ``.sig`` manifest with ``layers``, keeping the media types an existing one uses."""
    manifest_type = current.media_type if current else mediatype.OCI_MANIFEST
    if manifest_type == mediatype.DOCKER_MANIFEST:
        config_type = DOCKER_CONFIG
    else:
        manifest_type, config_type = mediatype.OCI_MANIFEST, mediatype.OCI_CONFIG
    config = Blob.of_bytes(config_type, config_blob(layers))
    if not store.has_blob(sig_ref.repository, config.descriptor.digest):
        store.push_blob(sig_ref.repository, config)
    if current is not None:
        manifest = current.model_copy(
            update={"media_type": manifest_type, "config": config.descriptor, "layers": layers}
        )
    else:
        manifest = Manifest(media_type=manifest_type, config=config.descriptor, layers=layers)
    store.push_manifest(sig_ref, manifest.to_json(), manifest_type)


def _sign_bundle(
    store: Store,
    reference: Reference,
    digest: Digest,
    key: PrivateKey,
    claims: dict[str, str],
    session: Session,
) -> SignResult:
    repo = reference.with_tag(None).with_digest(None)
    rule = TrustRule(key=key.public_key(), key_name="the key")
    for entry in bundle_referrers(store, repo, digest):
        # An equivalent bundle by this key is already attached (ECDSA signatures differ each time).
        try:
            found = _check_bundle(fetch_bundle(store, repo, digest, entry), digest, rule, claims)
        except Rejected:
            continue
        if found.annotations != claims:
            continue
        return SignResult(
            reference=reference.pinned(digest),
            digest=digest,
            signature_reference=None,
            payload_digest=None,
            signature=found.signature,
            signatures=1,
            unchanged=True,
            bundle_reference=repo.with_digest(entry.digest),
            format="bundle",
        )
    return _attach_signature_bundle(reference, digest, image_signature_bundle(digest, key, claims), session)


def _attach_signature_bundle(
    reference: Reference, digest: Digest, data: bytes, session: Session | None
) -> SignResult:
    title = f"{digest.algorithm}-{Digest.of(data).encoded}.sigstore.json"
    layer = Descriptor.of_bytes(BUNDLE_V03, data, annotations={ann.TITLE: title})
    attached = attach_blob(
        reference.pinned(digest),
        Blob(layer, data=data),
        artifact_type=BUNDLE_V03,
        annotations={CONTENT_ANNOTATION: "dsse-envelope", PREDICATE_ANNOTATION: COSIGN_SIGN_V1},
        session=session,
    )
    parsed = Bundle.from_json(data)
    return SignResult(
        reference=reference.pinned(digest),
        digest=digest,
        signature_reference=None,
        payload_digest=None,
        signature=base64.b64encode(parsed.signature).decode(),
        signatures=1,
        unchanged=False,
        bundle_reference=attached.reference,
        format="bundle",
    )


# -- keyless signing (CI) ------------------------------------------------------------------------

IDENTITY_TOKEN_ENV = "SIGSTORE_ID_TOKEN"


def identity_token() -> Any:
    """The OIDC identity token for keyless signing, checked offline (no network call yet).

    $SIGSTORE_ID_TOKEN (as cosign), else the ambient GitHub Actions credential (a job with
    ``permissions: id-token: write``). The token is never printed.
    """
    keyless_support()
    from sigstore.oidc import IdentityError, IdentityToken, detect_credential  # noqa: PLC0415

    raw = os.environ.get(IDENTITY_TOKEN_ENV)
    if not raw and os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
        try:
            raw = detect_credential()
        except IdentityError as exc:
            raise UsageError(f"cannot get the GitHub Actions identity token: {exc}") from None
    if not raw:
        raise UsageError(
            "no OIDC identity token for keyless signing",
            hint=f"set ${IDENTITY_TOKEN_ENV}, or run in GitHub Actions with 'permissions: id-token: write'",
        )
    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        raise UsageError(f"${IDENTITY_TOKEN_ENV} is not a usable OIDC identity token: {exc}") from None


def keyless_support() -> None:
    """UnsupportedError (exit 10) with what to install when the sigstore package is missing."""
    try:
        import sigstore.sign  # noqa: F401, PLC0415
    except ImportError:
        raise UnsupportedError(
            "keyless signing needs the sigstore package", hint="pip install 'mloci[sigstore]'"
        ) from None


def sign_keyless(
    reference: Reference,
    *,
    annotations: Mapping[str, str] | None = None,
    session: Session | None = None,
) -> SignResult:
    """Sign keyless, as ``cosign sign`` in CI: a Fulcio certificate for the CI's OIDC identity and a Rekor entry.

    The statement is the one :func:`sign` writes, with the repository as the subject's name
    (sigstore-python requires one). Fulcio, Rekor and the public-good TUF root are reached over
    the network through sigstore-python; everything before that (token, reference, statement)
    is checked first.
    """
    claims = check_annotations(annotations or {})
    token = identity_token()
    with scoped(session) as active:
        store = active.store(reference)
        digest = _resolve(store, reference)
    statement = image_signature_statement(digest, claims, name=docker_reference(reference))
    from sigstore.dsse import Statement  # noqa: PLC0415
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
    from sigstore.models import ClientTrustConfig  # noqa: PLC0415
    from sigstore.sign import SigningContext  # noqa: PLC0415

    try:
        context = SigningContext.from_trust_config(ClientTrustConfig.production())
        with context.signer(token) as signer:
            data = signer.sign_dsse(Statement(statement)).to_json().encode()
    except SigstoreError as exc:
        raise UnavailableError(
            f"keyless signing failed: {str(exc).splitlines()[0] if str(exc) else exc}"
        ) from None
    return _attach_signature_bundle(reference, digest, data, session)


# -- verify --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustRule:
    """Whose signatures count: a public key, or a certificate identity and issuer (keyless)."""

    key: PublicKey | None = None
    key_name: str = "the key"
    identity: IdentityRule | None = None
    trusted_root: Path | None = None
    require_tlog: bool = False

    def __post_init__(self) -> None:
        if (self.key is None) == (self.identity is None):
            raise UsageError(
                "verify with either --key or --certificate-identity and --certificate-oidc-issuer",
            )

    def describe(self) -> str:
        return self.key_name if self.identity is None else self.identity.describe()

    @classmethod
    def of(
        cls,
        key: Path | PublicKey | None = None,
        identity: IdentityRule | None = None,
        trusted_root: Path | None = None,
        *,
        require_tlog: bool = False,
    ) -> TrustRule:
        if isinstance(key, Path):
            return cls(load_public_key(key), key.name, identity, trusted_root, require_tlog)
        return cls(key, "the key", identity, trusted_root, require_tlog)


@dataclass(frozen=True)
class VerifiedSignature:
    payload_digest: Digest  # legacy: the simple-signing payload; bundle: the bundle blob
    signature: str
    docker_reference: str
    annotations: dict[str, Any]
    format: Literal["legacy", "bundle"] = "legacy"
    signer: str | None = None  # bundles: "key <hint>" or the certificate identity
    issuer: str | None = None
    transparency_log: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "payloadDigest": str(self.payload_digest),
            "signature": self.signature,
            "dockerReference": self.docker_reference,
            "annotations": self.annotations,
            "signer": self.signer,
            "issuer": self.issuer,
            "transparencyLog": self.transparency_log,
        }


@dataclass(frozen=True)
class VerifyResult:
    reference: Reference  # the verified artifact, pinned
    digest: Digest
    signature_reference: Reference | None  # the legacy .sig manifest, when there is one
    signatures: tuple[VerifiedSignature, ...]
    checked: int  # signatures examined (bundles and legacy layers)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "verified": True,
            "signatureReference": str(self.signature_reference) if self.signature_reference else None,
            "signatures": [s.to_json() for s in self.signatures],
            "checked": self.checked,
        }


def _fetch_payload(store: Store, repository: str, layer: Descriptor) -> bytes:
    if layer.size > _MAX_PAYLOAD:
        raise Rejected(f"payload {layer.digest} is larger than {_MAX_PAYLOAD} bytes", 1)
    try:
        with store.open_blob(repository, layer) as chunks:
            return b"".join(chunks)
    except IntegrityError:
        raise Rejected(f"payload blob {layer.digest} does not match its digest (tampered)", 1) from None
    except NotFoundError:
        raise Rejected(f"payload blob {layer.digest} is missing", 1) from None


def _check_layer(
    store: Store,
    repository: str,
    layer: Descriptor,
    key: PublicKey,
    digest: Digest,
    required: Mapping[str, str],
    payloads: dict[Digest, bytes],
) -> VerifiedSignature:
    encoded = layer.annotation(SIGNATURE_ANNOTATION)
    if not encoded:
        raise Rejected(f"layer {layer.digest.short} has no {SIGNATURE_ANNOTATION} annotation", 0)
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("the signature annotation is not base64", 0) from None
    if layer.digest not in payloads:
        payloads[layer.digest] = _fetch_payload(store, repository, layer)
    payload = payloads[layer.digest]
    if not verifies(key, signature, payload):
        raise Rejected("signature does not match", 0)
    # Only now, with the bytes vouched for by the key, is the payload parsed.
    checked = check_payload(payload, digest, required)
    return VerifiedSignature(
        payload_digest=layer.digest,
        signature=encoded,
        docker_reference=checked.docker_reference,
        annotations=checked.annotations,
    )


def bundle_referrers(store: Store, repo: Reference, digest: Digest) -> list[Descriptor]:
    """The sigstore bundle referrers of ``digest`` (signatures and attestations alike)."""
    return [
        entry
        for entry in list_referrers(store, repo, digest)
        if (entry.artifact_type or "").startswith(BUNDLE_PREFIX)
    ]


def fetch_bundle(store: Store, repo: Reference, subject: Digest, entry: Descriptor) -> bytes:
    """The bundle bytes of referrer ``entry``; Rejected unless it is one bundle attached to ``subject``."""
    try:
        _, data = store.fetch_manifest(repo.with_digest(entry.digest))
        manifest = Manifest.from_json(data)
    except NotFoundError:
        raise Rejected(f"bundle {entry.digest.short} is listed but missing", 0) from None
    except RegistryError:
        raise Rejected(f"bundle {entry.digest.short} is not an image manifest", 0) from None
    if manifest.subject is None or manifest.subject.digest != subject:
        raise Rejected(f"bundle {entry.digest.short} is attached to another artifact", 0)
    layers = [layer for layer in manifest.layers if layer.media_type.startswith(BUNDLE_PREFIX)]
    if len(layers) != 1:
        raise Rejected(f"referrer {entry.digest.short} holds {len(layers)} sigstore bundles, not one", 0)
    if layers[0].size > _MAX_BUNDLE:
        raise Rejected(f"bundle {layers[0].digest.short} is larger than {_MAX_BUNDLE} bytes", 0)
    try:
        with store.open_blob(repo.repository, layers[0]) as chunks:
            return b"".join(chunks)
    except IntegrityError:
        raise Rejected(f"bundle {layers[0].digest.short} does not match its digest (tampered)", 1) from None
    except NotFoundError:
        raise Rejected(f"bundle {layers[0].digest.short} is missing", 0) from None


def _check_bundle(
    data: bytes,
    digest: Digest,
    rule: TrustRule,
    required: Mapping[str, str],
    predicate_type: str | None = COSIGN_SIGN_V1,
) -> VerifiedSignature:
    verified = verify_bundle_bytes(data, digest, rule, predicate_type=predicate_type)
    claims: dict[str, Any] = {}
    if verified.statement is not None:
        for item in verified.statement.get("subject") or []:
            if isinstance(item, dict) and (item.get("digest") or {}).get(digest.algorithm) == digest.encoded:
                found = item.get("annotations")
                claims = dict(found) if isinstance(found, dict) else {}
    for name, value in required.items():
        if claims.get(name) != value:
            raise Rejected(f"the signed statement lacks annotation {name}={value}", 4)
    log = verified.log
    return VerifiedSignature(
        payload_digest=Digest.of(data),
        signature=base64.b64encode(Bundle.from_json(data).signature).decode(),
        docker_reference="",
        annotations=claims,
        format="bundle",
        signer=verified.signer,
        issuer=verified.issuer,
        transparency_log=(
            {"logIndex": log.log_index, "integratedTime": log.integrated_time.isoformat(), "log": log.log_url}
            if log
            else None
        ),
    )


def _load_root(path: Path | None) -> dict[str, Any] | None:
    path = trusted_root_path(path)
    if path is None:
        return None
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"trusted root {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"trusted root {path} is not readable JSON: {exc}") from None
    if not isinstance(document, dict) or "tlogs" not in document:
        raise UsageError(f"{path} is not a sigstore trusted_root.json (no tlogs)")
    return document


def verify_bundle_bytes(
    data: bytes, digest: Digest, rule: TrustRule, *, predicate_type: str | None = None
) -> Verified:
    """Verify the sigstore bundle ``data`` over the artifact ``digest`` with ``rule``; Rejected otherwise."""
    try:
        bundle = Bundle.from_json(data)
    except ValueError as exc:
        raise Rejected(f"not a sigstore bundle ({exc})", 1) from None
    if rule.identity is not None:
        verified = verify_keyless(
            data, bundle, digest, rule.identity, trusted_root=rule.trusted_root, predicate_type=predicate_type
        )
        root = _load_root(rule.trusted_root)
        if root is not None and bundle.tlog_entries:
            # sigstore-python checked the log; this records which entry (and checks it a second time).
            logs = rekor.log_keys(root)
            evidence = [
                rekor.verify_entry(entry, logs) for entry in bundle.tlog_entries if rekor.is_v1(entry)
            ]
            if evidence:
                verified = replace(verified, log=evidence[0])
        return verified
    assert rule.key is not None  # noqa: S101
    if bundle.certificate is not None:
        raise Rejected("the bundle is signed with a certificate: verify it with --certificate-identity", 1)
    return verify_with_key(
        bundle,
        rule.key,
        digest,
        trusted_root=_load_root(rule.trusted_root),
        predicate_type=predicate_type,
        require_tlog=rule.require_tlog,
    )


def verify(
    reference: Reference,
    public_key_path: Path | None = None,
    *,
    identity: IdentityRule | None = None,
    trusted_root: Path | None = None,
    require_tlog: bool = False,
    required_annotations: Mapping[str, str] | None = None,
    session: Session | None = None,
) -> VerifyResult:
    """The signatures on exactly the manifest ``reference`` names that verify with the key or identity.

    Sigstore bundles are found through the referrers API (or the referrers tag schema), then
    cosign's legacy ``sha256-<hex>.sig`` tag. A bundle counts when its signature verifies (key, or
    certificate chain, SCT and transparency log for ``identity``) and its statement's subject is
    this digest; a legacy signature when the signature matches the payload's exact bytes and the
    payload binds this digest. Every ``required_annotations`` pair must be among the signed
    claims. Raises IntegrityError when the artifact is unsigned or no signature counts, with the
    reason of the signature that came closest. ``require_tlog``: a key-based signature counts only
    with a transparency-log entry that verifies against the trusted root (keyless ones always need it).
    """
    required = dict(required_annotations or {})
    rule = TrustRule.of(public_key_path, identity, trusted_root, require_tlog=require_tlog)
    with scoped(session) as active:
        store = active.store(reference)
        # As cosign: a digest is what is verified, whether or not the registry holds its manifest.
        digest = reference.digest if reference.digest is not None else _resolve(store, reference)
        repo = reference.with_tag(None).with_digest(None)
        valid: list[VerifiedSignature] = []
        closest: Rejected | None = None
        checked = 0
        for entry in bundle_referrers(store, repo, digest):
            predicate = (entry.annotations or {}).get(PREDICATE_ANNOTATION)
            if predicate is not None and predicate != COSIGN_SIGN_V1:
                continue  # an attestation or model signature, not an image signature
            checked += 1
            try:
                data = fetch_bundle(store, repo, digest, entry)
                valid.append(_check_bundle(data, digest, rule, required))
            except Rejected as rejected:
                if closest is None or rejected.rank > closest.rank:
                    closest = rejected
        sig_ref = reference.with_digest(None).with_tag(signature_tag(digest))
        signature_reference: Reference | None = None
        layers: list[Descriptor] = []
        try:
            descriptor, data = store.fetch_manifest(sig_ref)
        except NotFoundError:
            descriptor = None
        if descriptor is not None:
            signature_reference = sig_ref.with_digest(descriptor.digest)
            if descriptor.media_type in mediatype.INDEX_TYPES:
                raise IntegrityError(f"{sig_ref} is not a cosign signature manifest")
            try:
                manifest = Manifest.from_json(data)
            except RegistryError:
                raise IntegrityError(f"{sig_ref} is not a cosign signature manifest") from None
            layers = [layer for layer in manifest.layers if layer.media_type == SIMPLE_SIGNING]
        payloads: dict[Digest, bytes] = {}
        for layer in layers:
            checked += 1
            try:
                if rule.key is None:
                    raise Rejected("mloci verifies legacy .sig signatures with --key only", 0)
                if rule.require_tlog:
                    raise Rejected(
                        "a legacy .sig signature carries no transparency-log proof mloci checks", 0
                    )
                valid.append(
                    _check_layer(store, reference.repository, layer, rule.key, digest, required, payloads)
                )
            except Rejected as rejected:
                if closest is None or rejected.rank > closest.rank:
                    closest = rejected
        if checked == 0:
            raise IntegrityError(
                f"{reference.name}@{digest} is not signed (no sigstore bundle referrer, no tag {sig_ref.tag})"
            )
        if not valid:
            reason = closest.reason if closest else "no usable signature"
            many = f" ({checked} checked)" if checked > 1 else ""
            raise IntegrityError(f"no signature for {digest} verifies with {rule.describe()}: {reason}{many}")
        return VerifyResult(
            reference=reference.pinned(digest),
            digest=digest,
            signature_reference=signature_reference,
            signatures=tuple(valid),
            checked=checked,
        )


# -- verify-bundle (offline) ---------------------------------------------------------------------


@dataclass(frozen=True)
class BundleVerifyResult:
    path: Path
    verified: Verified

    def to_json(self) -> dict[str, Any]:
        return {"bundle": str(self.path), "verified": True, **self.verified.to_json()}


def _read_bundle_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > _MAX_BUNDLE:
            raise UsageError(f"{path} is larger than {_MAX_BUNDLE} bytes; not a sigstore bundle")
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"bundle {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a bundle file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def verify_bundle_file(
    path: Path,
    rule: TrustRule,
    *,
    digest: Digest | None = None,
    artifact: Path | None = None,
    predicate_type: str | None = None,
) -> BundleVerifyResult:
    """Verify a bundle file offline, like ``cosign verify-blob --bundle`` / ``verify-blob-attestation``.

    The artifact is ``digest`` (an image or artifact manifest digest, the statement's subject) or
    the file ``artifact`` (hashed once, streaming). A bare DSSE envelope (cosign's legacy ``.att``
    layer) is accepted too, with ``--key``. IntegrityError (exit 6) when it does not verify.
    """
    if (digest is None) == (artifact is None):
        raise UsageError("give exactly one of --digest and --artifact")
    if artifact is not None:
        if not artifact.is_file():
            raise UsageError(f"artifact {artifact} is not a file")
        digest = hash_file(artifact)[0]
    assert digest is not None  # noqa: S101
    data = _read_bundle_file(path)
    try:
        if _is_bare_envelope(data):
            verified = _verify_bare_envelope(data, digest, rule, predicate_type)
        else:
            verified = verify_bundle_bytes(data, digest, rule, predicate_type=predicate_type)
    except Rejected as rejected:
        raise IntegrityError(f"{path.name} does not verify for {digest}: {rejected.reason}") from None
    return BundleVerifyResult(path, verified)


def _is_bare_envelope(data: bytes) -> bool:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(document, dict) and "payloadType" in document and "mediaType" not in document


def _verify_bare_envelope(
    data: bytes, digest: Digest, rule: TrustRule, predicate_type: str | None
) -> Verified:
    if rule.key is None:
        raise Rejected("a bare DSSE envelope carries no certificate: verify it with --key", 1)
    try:
        envelope = Envelope.from_json(data)
    except ValueError as exc:
        raise Rejected(f"not a DSSE envelope ({exc})", 1) from None
    if not signed_by(envelope, rule.key):
        raise Rejected("signature does not match (the envelope was altered or signed by another key)", 2)
    kind, statement = check_statement(
        envelope.payload_type, envelope.payload, digest, predicate_type, legacy=True
    )
    return Verified("dsse-envelope", digest, kind, statement, f"key {key_hint(rule.key)}")


# -- OpenSSF model signing (a signature over the files of a directory) ---------------------------


@dataclass(frozen=True)
class ModelSignResult:
    path: Path  # the model directory
    signature: Path  # the bundle written
    digest: Digest  # the model digest (the statement's subject)
    files: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model": str(self.path),
            "signature": str(self.signature),
            "digest": str(self.digest),
            "files": self.files,
        }


@dataclass(frozen=True)
class ModelVerifyResult:
    path: Path
    signature: Path
    verified: Verified
    files: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model": str(self.path),
            "signature": str(self.signature),
            "files": self.files,
            "verified": True,
            **{k: v for k, v in self.verified.to_json().items() if k != "content"},
        }


def _inside(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _write_replacing(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file beside it and rename (no half-written signature)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sign_model_directory(
    root: Path,
    key_path: Path,
    password: bytes | None,
    *,
    signature: Path | None = None,
    ignore_paths: tuple[str, ...] = (),
) -> ModelSignResult:
    """Write an OpenSSF model signature (``model_signing verify key`` reads it) over ``root``'s files.

    The signature goes to ``signature`` (default ``ROOT/model.sig``, replaced if present); it, git
    metadata, mloci's ``.mloci`` marker and ``ignore_paths`` are left out of the signed files and
    recorded as ignored, so the signature travels inside the directory.
    """
    key = load_private_key(key_path, password)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    target = signature or root / model_signing.SIGNATURE_NAME
    inner = _inside(target, root)
    ignore = sorted({*model_signing.DEFAULT_IGNORE, ".mloci", *ignore_paths, *([inner] if inner else [])})
    data = model_signing.sign_tree(root, key, ignore)
    try:
        _write_replacing(target, data)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    bundle = Bundle.from_json(data)
    assert bundle.envelope is not None  # noqa: S101
    statement = json.loads(bundle.envelope.payload)
    files = len(statement["predicate"]["resources"])
    return ModelSignResult(
        root, target, Digest.parse("sha256:" + statement["subject"][0]["digest"]["sha256"]), files
    )


def verify_model_directory(
    root: Path, rule: TrustRule, *, signature: Path | None = None
) -> ModelVerifyResult:
    """Verify an OpenSSF model signature (from ``model_signing sign`` or mloci) over ``root``'s files.

    The bundle must verify (key, or keyless identity) with predicate type
    ``https://model_signing/signature/v1.0``, and the files on disk, less the paths the signature
    says it ignored (and the signature file itself), must be exactly the signed ones.
    IntegrityError (exit 6) otherwise, naming the files that differ.
    """
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    path = signature or root / model_signing.SIGNATURE_NAME
    data = _read_bundle_file(path)
    try:
        try:
            bundle = Bundle.from_json(data)
        except ValueError as exc:
            raise Rejected(f"not a sigstore bundle ({exc})", 1) from None
        if bundle.envelope is None:
            raise Rejected("the bundle holds no statement, so no model signature", 1)
        # The subject the bundle claims (unverified) selects what to check it against; the
        # signature then vouches for the statement, whose file list is compared with the disk.
        try:
            claimed = json.loads(bundle.envelope.payload)
            subject = Digest.parse("sha256:" + claimed["subject"][0]["digest"]["sha256"])
        except (ValueError, KeyError, IndexError, TypeError, UsageError):
            raise Rejected("the statement names no sha256 subject", 3) from None
        verified = verify_bundle_bytes(data, subject, rule, predicate_type=model_signing.PREDICATE)
        assert verified.statement is not None  # noqa: S101
        inner = _inside(path, root)
        ignore = [*model_signing.signed_ignore_paths(verified.statement), *([inner] if inner else [])]
        actual = model_signing.hash_tree(root, ignore)
        model_signing.compare(verified.statement, actual)
        if model_signing.model_digest(model_signing.signed_resources(verified.statement)) != subject:
            raise Rejected("the files hash to another model digest than the signed subject", 5)
    except Rejected as rejected:
        raise IntegrityError(
            f"{root} does not match its model signature {path.name}: {rejected.reason}"
        ) from None
    return ModelVerifyResult(root, path, verified, len(actual))


def _artifact_resources(
    reference: Reference, session: Session
) -> tuple[Reference, list[model_signing.Resource]]:
    """The files of a registry artifact as model-signing resources, from its layer digests alone.

    Raw file layers are the pulled files byte for byte (pull checks every digest), so a signature
    over these resources holds for the directory ``pull`` writes (``.mloci`` is ignored).
    """
    from mloci.ops.inspection import inspect  # noqa: PLC0415

    artifact = inspect(reference, session=session)
    ignore = (*model_signing.DEFAULT_IGNORE, ".mloci", model_signing.SIGNATURE_NAME)
    resources: list[model_signing.Resource] = []
    for item in artifact.files:
        if item.path is None or "tar" in item.media_type or item.digest.algorithm != "sha256":
            raise UnsupportedError(
                f"{artifact.reference} has layers that are not single files ({item.media_type}); "
                "sign the pulled directory instead"
            )
        if not any(item.path == p or item.path.startswith(p + "/") for p in ignore):
            resources.append(model_signing.Resource(item.path, item.digest.encoded))
    resources.sort(key=lambda r: PurePosixPath(r.name).parts)
    return artifact.reference, resources


def sign_model_artifact(
    reference: Reference, key_path: Path, password: bytes | None, *, session: Session | None = None
) -> SignResult:
    """An OpenSSF model signature over the files of the artifact ``reference`` names, attached as a referrer.

    Computed from the manifest's layer digests (nothing is downloaded); the referrer's layer is
    titled ``model.sig``, so ``oras pull`` or a pull of the referrer yields the usual file.
    """
    key = load_private_key(key_path, password)
    with scoped(session) as active:
        pinned, resources = _artifact_resources(reference, active)
        assert pinned.digest is not None  # noqa: S101
        ignore = sorted({*model_signing.DEFAULT_IGNORE, ".mloci", model_signing.SIGNATURE_NAME})
        statement = model_signing.statement(pinned.repository.rsplit("/", 1)[-1], resources, ignore)
        envelope = sign_envelope(statement, key)
        data = model_signing.bundle_of(envelope, key.public_key())
        layer = Descriptor.of_bytes(BUNDLE_V03, data, annotations={ann.TITLE: model_signing.SIGNATURE_NAME})
        attached = attach_blob(
            pinned,
            Blob(layer, data=data),
            artifact_type=BUNDLE_V03,
            annotations={CONTENT_ANNOTATION: "dsse-envelope", PREDICATE_ANNOTATION: model_signing.PREDICATE},
            session=active,
        )
    return SignResult(
        reference=pinned,
        digest=pinned.digest,
        signature_reference=None,
        payload_digest=None,
        signature=base64.b64encode(envelope.signatures[0].sig).decode(),
        signatures=1,
        unchanged=False,
        bundle_reference=attached.reference,
        format="bundle",
    )


def verify_model_artifact(
    reference: Reference, rule: TrustRule, *, session: Session | None = None
) -> VerifyResult:
    """The OpenSSF model signatures attached to ``reference`` that verify over its files (layer digests).

    IntegrityError (exit 6) when none does; a pull of the same digest then yields exactly the
    signed files.
    """
    with scoped(session) as active:
        pinned, resources = _artifact_resources(reference, active)
        assert pinned.digest is not None  # noqa: S101
        subject = model_signing.model_digest(resources)
        store = active.store(pinned)
        repo = pinned.with_tag(None).with_digest(None)
        valid: list[VerifiedSignature] = []
        closest: Rejected | None = None
        checked = 0
        for entry in bundle_referrers(store, repo, pinned.digest):
            predicate = (entry.annotations or {}).get(PREDICATE_ANNOTATION)
            if predicate not in (None, model_signing.PREDICATE):
                continue
            checked += 1
            try:
                data = fetch_bundle(store, repo, pinned.digest, entry)
                verified = verify_bundle_bytes(data, subject, rule, predicate_type=model_signing.PREDICATE)
                assert verified.statement is not None  # noqa: S101
                model_signing.compare(verified.statement, resources)
            except Rejected as rejected:
                if closest is None or rejected.rank > closest.rank:
                    closest = rejected
                continue
            valid.append(
                VerifiedSignature(
                    payload_digest=Digest.of(data),
                    signature=base64.b64encode(Bundle.from_json(data).signature).decode(),
                    docker_reference="",
                    annotations={},
                    format="bundle",
                    signer=verified.signer,
                    issuer=verified.issuer,
                )
            )
        if checked == 0:
            raise IntegrityError(f"{pinned} has no model signature referrer")
        if not valid:
            reason = closest.reason if closest else "no usable signature"
            raise IntegrityError(
                f"no model signature of {pinned.digest} verifies with {rule.describe()}: {reason}"
            )
        return VerifyResult(pinned, pinned.digest, None, tuple(valid), checked)
