"""Key-based signatures that cosign reads and writes (sigstore/cosign ``specs/SIGNATURE_SPEC.md``).

Storage is cosign's *tag-based discovery*: the signatures of ``repo@sha256:<hex>`` live in one
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mloci.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    UsageError,
)
from mloci.store import Store, StoreOptions, open_store
from mloci.trust import Rejected
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
from mloci.trust.keys import (
    PublicKey,
    generate_keypair,
    is_encrypted,
    load_private_key,
    load_public_key,
    sign_bytes,
    verifies,
)
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
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


@dataclass(frozen=True)
class SignResult:
    reference: Reference  # the signed artifact, pinned
    digest: Digest
    signature_reference: Reference  # repo:sha256-<hex>.sig@<manifest digest>
    payload_digest: Digest
    signature: str  # base64 DER, as stored in the layer annotation
    signatures: int  # layers in the .sig manifest now
    unchanged: bool  # an identical signature by this key was already there

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "signatureReference": str(self.signature_reference),
            "payloadDigest": str(self.payload_digest),
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
    options: StoreOptions | None = None,
) -> SignResult:
    """Sign the manifest ``reference`` names, cosign-style, keeping any signatures already there.

    ``annotations`` become the payload's ``optional`` claims (``cosign sign -a``). Signing the
    same payload again with the same key changes nothing (as cosign's duplicate detection).
    """
    claims = check_annotations(annotations or {})
    key = load_private_key(key_path, password)
    store = open_store(reference, options)
    try:
        digest = _resolve(store, reference)
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
    finally:
        store.close()


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


# -- verify --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedSignature:
    payload_digest: Digest
    signature: str
    docker_reference: str
    annotations: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "payloadDigest": str(self.payload_digest),
            "signature": self.signature,
            "dockerReference": self.docker_reference,
            "annotations": self.annotations,
        }


@dataclass(frozen=True)
class VerifyResult:
    reference: Reference  # the verified artifact, pinned
    digest: Digest
    signature_reference: Reference
    signatures: tuple[VerifiedSignature, ...]
    checked: int  # signature layers examined

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "verified": True,
            "signatureReference": str(self.signature_reference),
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


def verify(
    reference: Reference,
    public_key_path: Path,
    *,
    required_annotations: Mapping[str, str] | None = None,
    options: StoreOptions | None = None,
) -> VerifyResult:
    """The signatures on exactly the manifest ``reference`` names that verify with the public key.

    A signature counts when the ECDSA signature matches the payload's exact bytes, the payload
    is a cosign simple-signing document binding this digest, and its ``optional`` claims hold
    every ``required_annotations`` pair. Raises IntegrityError when the artifact is unsigned or
    no signature counts, with the reason of the signature that came closest.
    """
    required = dict(required_annotations or {})
    key = load_public_key(public_key_path)
    store = open_store(reference, options)
    try:
        digest = _resolve(store, reference)
        sig_ref = reference.with_digest(None).with_tag(signature_tag(digest))
        try:
            descriptor, data = store.fetch_manifest(sig_ref)
        except NotFoundError:
            raise IntegrityError(f"{reference.name}@{digest} is not signed (no tag {sig_ref.tag})") from None
        if descriptor.media_type in mediatype.INDEX_TYPES:
            raise IntegrityError(f"{sig_ref} is not a cosign signature manifest")
        try:
            manifest = Manifest.from_json(data)
        except RegistryError:
            raise IntegrityError(f"{sig_ref} is not a cosign signature manifest") from None
        layers = [layer for layer in manifest.layers if layer.media_type == SIMPLE_SIGNING]
        if not layers:
            raise IntegrityError(
                f"{reference.name}@{digest} is not signed ({sig_ref.tag} holds no signature)"
            )
        valid: list[VerifiedSignature] = []
        closest: Rejected | None = None
        payloads: dict[Digest, bytes] = {}
        for layer in layers:
            try:
                valid.append(
                    _check_layer(store, reference.repository, layer, key, digest, required, payloads)
                )
            except Rejected as rejected:
                if closest is None or rejected.rank > closest.rank:
                    closest = rejected
        if not valid:
            reason = closest.reason if closest else "no usable signature"
            checked = f" ({len(layers)} checked)" if len(layers) > 1 else ""
            raise IntegrityError(
                f"no signature for {digest} verifies with {public_key_path.name}: {reason}{checked}"
            )
        return VerifyResult(
            reference=reference.pinned(digest),
            digest=digest,
            signature_reference=sig_ref.with_digest(descriptor.digest),
            signatures=tuple(valid),
            checked=len(layers),
        )
    finally:
        store.close()
