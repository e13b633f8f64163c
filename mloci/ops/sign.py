"""Signatures that cosign reads and writes: sigstore bundles (cosign v3) and the legacy ``.sig`` tag.

**Bundles** (the default, as ``cosign sign`` v3 writes them): a sigstore bundle v0.3 holding a
DSSE envelope around an in-toto statement (``predicateType`` ``https://sigstore.dev/cosign/sign/v1``,
subject = the manifest digest), attached as an OCI 1.1 referrer (artifactType and layer media type
``application/vnd.dev.sigstore.bundle.v0.3+json``; cosign ``specs/BUNDLE_SPEC.md``), found through
the referrers API or the referrers tag schema. Verification accepts key-based bundles (checked with
``cryptography``) and keyless ones (a Fulcio certificate, through the ``sigstore`` extra).

**Legacy** (sigstore/cosign ``specs/SIGNATURE_SPEC.md``, cosign v1/v2): cosign's *tag-based
discovery*: the signatures of ``repo@sha256:<hex>`` live in one OCI image manifest tagged ``sha256-<hex>.sig`` in the same repository. Each signature is one
layer of media type ``application/vnd.dev.cosign.simplesigning.v1+json``: its blob is the signed
*simple-signing* payload, and the layer annotation ``dev.cosignproject.cosign/signature`` holds the
base64 of the signature over the payload's exact bytes (ECDSA P-256 / SHA-256 DER, or Ed25519). A further
signature appends a layer; like cosign, concurrent signers can race (the spec says so), so the
writer re-reads once after writing and merges again if its layer was lost.

The payload binds the artifact's manifest digest (``critical.image.docker-manifest-digest``), so a
signature copied next to another artifact does not verify for it. Payload, config blob and
manifest are shaped as cosign (go-containerregistry) writes them, so ``cosign verify --key`` accepts
what :func:`sign` writes (mloci does not upload to a transparency log: cosign 2 needs
``--insecure-ignore-tlog=true``), and :func:`verify` accepts what ``cosign sign --key`` writes.

Wire formats and keys are :mod:`mloci.trust`; offline bundle verification is
:mod:`mloci.trust.verifier`; this module is the use case over a store. Model signatures are
:mod:`mloci.ops.model_signature`.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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
from mloci.ops._retry import until_kept
from mloci.ops.attach import attach_blob
from mloci.ops.referrers import list_referrers
from mloci.store import Session, Store, read_small_blob, scoped
from mloci.trust import Rejected, legacy_keyless
from mloci.trust.bundle import (
    BUNDLE_PREFIX,
    BUNDLE_V03,
    CONTENT_ANNOTATION,
    PREDICATE_ANNOTATION,
    Bundle,
    image_signature_bundle,
    image_signature_statement,
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
from mloci.trust.intoto import COSIGN_SIGN_V1
from mloci.trust.keyless import IdentityRule
from mloci.trust.keys import (
    PrivateKey,
    PublicKey,
    generate_keypair,
    is_encrypted,
    load_private_key,
    load_public_key,
    sign_bytes,
    verifies,
)
from mloci.trust.verifier import MAX_BUNDLE, TrustRule, keyless_root, verify_bundle_bytes
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest
from mloci.types.reference import Reference

__all__ = [
    "COSIGN_SIGNATURE_TYPE",
    "IDENTITY_TOKEN_ENV",
    "SIGNATURE_ANNOTATION",
    "SIGN_FORMATS",
    "SIMPLE_SIGNING",
    "Rejected",
    "SignFormat",
    "SignResult",
    "TrustRule",
    "VerifiedSignature",
    "VerifyResult",
    "bundle_referrers",
    "docker_reference",
    "fetch_bundle",
    "generate_keypair",
    "is_encrypted",
    "load_private_key",
    "load_public_key",
    "sign",
    "sign_keyless",
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
    written = False

    def ours(current: Manifest | None, current_digest: Digest | None) -> SignResult | None:
        """The result when ``current`` holds our signature (or an equivalent one this key made before)."""
        layers = list(current.layers) if current else []
        mine = next(
            (
                existing
                for existing in layers
                if _layer_signed_by(existing, payload_blob.descriptor.digest, public_key, payload)
            ),
            None,
        )
        if mine is None or current_digest is None:
            return None
        return SignResult(
            reference=reference.pinned(digest),
            digest=digest,
            signature_reference=sig_ref.with_digest(current_digest),
            payload_digest=payload_blob.descriptor.digest,
            signature=mine.annotation(SIGNATURE_ANNOTATION) or signature,
            signatures=len(layers),
            unchanged=not written,
        )

    def attempt() -> SignResult | None:
        nonlocal written
        current, current_digest = _current_signatures(store, sig_ref)
        found = ours(current, current_digest)
        if found is None:
            _push_signatures(store, sig_ref, current, [*(current.layers if current else []), layer])
            written = True
            # Re-read after writing: another signer may have replaced the manifest without our layer.
            found = ours(*_current_signatures(store, sig_ref))
        return found

    return until_kept(
        attempt, what=f"{sig_ref} (the signature was not kept)", hint="sign again", rounds=_MAX_WRITE_ROUNDS
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
        return read_small_blob(store, repository, layer, limit=_MAX_PAYLOAD)
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


def _check_keyless_layer(
    store: Store,
    repository: str,
    layer: Descriptor,
    identity: IdentityRule,
    root: dict[str, Any],
    digest: Digest,
    required: Mapping[str, str],
    payloads: dict[Digest, bytes],
) -> VerifiedSignature:
    """A cosign v2 keyless layer: certificate, chain and Rekor SET annotations (:mod:`mloci.trust.legacy_keyless`)."""
    if layer.digest not in payloads:
        payloads[layer.digest] = _fetch_payload(store, repository, layer)
    payload = payloads[layer.digest]
    signed = legacy_keyless.verify_layer(payload, layer.annotations or {}, identity, root)
    checked = check_payload(payload, digest, required)
    return VerifiedSignature(
        payload_digest=layer.digest,
        signature=layer.annotation(SIGNATURE_ANNOTATION) or "",
        docker_reference=checked.docker_reference,
        annotations=checked.annotations,
        signer=signed.identity,
        issuer=signed.issuer,
        transparency_log=signed.log.to_json() if signed.log else None,
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
    if layers[0].size > MAX_BUNDLE:
        raise Rejected(f"bundle {layers[0].digest.short} is larger than {MAX_BUNDLE} bytes", 0)
    try:
        return read_small_blob(store, repo.repository, layers[0], limit=MAX_BUNDLE)
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
        transparency_log=log.to_json() if log else None,
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
    With ``identity``, legacy layers count when they are cosign v2 keyless signatures
    (:mod:`mloci.trust.legacy_keyless`: certificate, chain and Rekor SET annotations).
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
        root: dict[str, Any] | None = None
        for layer in layers:
            checked += 1
            try:
                if rule.identity is not None:
                    if layer.annotation(legacy_keyless.CERTIFICATE_ANNOTATION) is None:
                        raise Rejected("a legacy .sig signature made with a key: verify it with --key", 0)
                    if root is None:
                        root = keyless_root(rule.trusted_root)
                    valid.append(
                        _check_keyless_layer(
                            store,
                            reference.repository,
                            layer,
                            rule.identity,
                            root,
                            digest,
                            required,
                            payloads,
                        )
                    )
                    continue
                assert rule.key is not None  # noqa: S101
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
            raise IntegrityError(
                f"no signature for {digest} verifies with {rule.describe()}: {reason}{many}",
                hint=closest.advice if closest else None,
            )
        return VerifyResult(
            reference=reference.pinned(digest),
            digest=digest,
            signature_reference=signature_reference,
            signatures=tuple(valid),
            checked=checked,
        )
