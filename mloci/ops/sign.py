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

Keys are ECDSA P-256: the private key as PKCS#8 PEM (encrypted with a passphrase), the public key
as SubjectPublicKeyInfo PEM, which cosign takes with ``--key``. Passphrases never appear in a
message or an exception.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mloci.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    UnsupportedError,
    UsageError,
)
from mloci.store import Session, Store, scoped
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest, canonical_json
from mloci.types.reference import Reference

SIMPLE_SIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
COSIGN_SIGNATURE_TYPE: Final = "cosign container image signature"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"

# Payloads are a few hundred bytes; a larger blob is refused unread.
_MAX_PAYLOAD = 1 << 20
_MAX_WRITE_ROUNDS = 5
# encoding/json (which cosign uses) escapes these even inside strings; mloci writes the same bytes.
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
# go-containerregistry's zero time, as in every config blob cosign writes.
_ZERO_TIME = "0001-01-01T00:00:00Z"


# -- keys ----------------------------------------------------------------------------------------


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _not_p256(key: object, path: Path) -> UsageError:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        kind = f"ECDSA {key.curve.name}"
    else:
        kind = type(key).__name__.lstrip("_").removesuffix("PrivateKey").removesuffix("PublicKey") or "?"
    return UsageError(f"{path} is a {kind} key; mloci signs and verifies with ECDSA P-256 keys only")


def _cosign_format(data: bytes) -> bool:
    return b"SIGSTORE PRIVATE KEY" in data or b"COSIGN PRIVATE KEY" in data


def _encrypted_pem(data: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def is_encrypted(path: Path) -> bool:
    """Whether the PEM private key at ``path`` needs a passphrase (so a caller knows to ask for one)."""
    return _encrypted_pem(_read_key_file(path, "private key"))


def load_private_key(path: Path, password: bytes | None) -> ec.EllipticCurvePrivateKey:
    """The ECDSA P-256 private key in PEM file ``path``, decrypted with ``password`` when encrypted.

    Raises UsageError (one line) for a missing file, a missing or wrong passphrase, a key that
    is not ECDSA P-256, or cosign's own encrypted key format (not PKCS#8).
    """
    data = _read_key_file(path, "private key")
    if _cosign_format(data):
        raise UsageError(
            f"{path} is in cosign's own encrypted key format, which mloci does not read",
            hint="use a PKCS#8 PEM key such as 'mloci keygen' writes",
        )
    encrypted = _encrypted_pem(data)
    if encrypted and not password:
        raise UsageError(f"{path} is encrypted and no passphrase was given", hint="set MLOCI_KEY_PASSWORD")
    try:
        key = serialization.load_pem_private_key(data, password=password if encrypted else None)
    except ValueError:
        if encrypted:
            raise UsageError(f"wrong passphrase for {path}") from None
        raise UsageError(f"{path} is not a PEM private key") from None
    except UnsupportedAlgorithm:
        raise UsageError(f"{path} uses a key type or encryption this system cannot read") from None
    except TypeError:
        raise UsageError(f"{path} could not be decrypted with the given passphrase") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _not_p256(key, path)
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """The ECDSA P-256 public key in PEM file ``path`` (SubjectPublicKeyInfo, as cosign writes)."""
    data = _read_key_file(path, "public key")
    if b"PRIVATE KEY" in data:
        raise UsageError(f"{path} is a private key; verify with the public key (the .pub file)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(f"{path} is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _not_p256(key, path)
    return key


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` with ``mode`` through a temporary file; never replace an existing file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp_path = Path(tmp)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # A hard link publishes the finished file without clobbering one that appeared meanwhile.
            path.hardlink_to(tmp_path)
        except FileExistsError:
            raise ConflictError(f"{path} already exists; not overwriting a key") from None
        except OSError:
            # Filesystems without hard links: check, then rename (not atomic against a racing writer).
            if path.exists():
                raise ConflictError(f"{path} already exists; not overwriting a key") from None
            tmp_path.rename(path)
    finally:
        tmp_path.unlink(missing_ok=True)


def generate_keypair(
    prefix: Path, password: bytes | None, *, allow_unencrypted: bool = False
) -> tuple[Path, Path]:
    """Create ``<prefix>.key`` (PKCS#8 PEM, mode 0600) and ``<prefix>.pub``; return both paths.

    The private key is encrypted with ``password``. An unencrypted key is written only when
    ``password`` is explicitly ``b""`` *and* ``allow_unencrypted`` is set. Existing files are
    never overwritten (ConflictError).
    """
    if not prefix.name or prefix.name in (".", ".."):
        raise UsageError(f"key prefix {str(prefix)!r} names no file")
    private_path = prefix.with_name(prefix.name + ".key")
    public_path = prefix.with_name(prefix.name + ".pub")
    if password is None:
        raise UsageError("a passphrase is needed to encrypt the private key", hint="set MLOCI_KEY_PASSWORD")
    encryption: serialization.KeySerializationEncryption
    if password:
        encryption = serialization.BestAvailableEncryption(password)
    elif allow_unencrypted:
        encryption = serialization.NoEncryption()
    else:
        raise UsageError(
            "refusing to write an unencrypted private key",
            hint="give a passphrase, or allow it explicitly for throwaway keys",
        )
    if not private_path.parent.is_dir():
        raise UsageError(f"directory {private_path.parent} does not exist")
    for path in (private_path, public_path):
        if path.exists():
            raise ConflictError(f"{path} already exists; not overwriting a key")
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        _write_new(private_path, private_pem, 0o600)
        try:
            _write_new(public_path, public_pem, 0o644)
        except BaseException:
            private_path.unlink(missing_ok=True)  # no half key pair
            raise
    except OSError as exc:
        raise UsageError(f"cannot write the key pair at {prefix}: {exc.strerror or exc}") from None
    return private_path, public_path


# -- payload and storage format ------------------------------------------------------------------


def signature_tag(digest: Digest) -> str:
    """cosign's tag for the signatures of ``digest``: ``sha256-<hex>.sig``."""
    if digest.algorithm != "sha256":
        raise UnsupportedError(f"cosign's signature tags only address sha256 digests, not {digest}")
    return f"{digest.algorithm}-{digest.encoded}.sig"


def docker_reference(reference: Reference) -> str:
    """``critical.identity.docker-reference`` as cosign writes it (go-containerregistry's Repository.Name)."""
    if reference.registry is None:
        return reference.repository  # the local store has no registry name
    registry, repository = reference.registry, reference.repository
    if registry in ("docker.io", "index.docker.io"):
        registry = "index.docker.io"
        if "/" not in repository:
            repository = f"library/{repository}"
    return f"{registry}/{repository}"


def _check_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in annotations.items():
        if not key:
            raise UsageError("annotation keys cannot be empty")
        try:
            key.encode()
            value.encode()
        except UnicodeEncodeError:
            raise UsageError(f"annotation {key!r} is not valid UTF-8 text") from None
        clean[key] = value
    return clean


def simple_signing_payload(identity: str, digest: Digest, annotations: Mapping[str, str]) -> bytes:
    """The simple-signing payload, byte for byte as cosign serializes it.

    Go marshals the struct fields in declaration order (critical, optional; identity, image, type),
    which is also sorted order, and map keys sorted; ``optional`` is ``null`` without annotations;
    ``<``, ``>``, ``&``, U+2028 and U+2029 are escaped as ``\\u00XX``.
    """
    value = {
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": str(digest)},
            "type": COSIGN_SIGNATURE_TYPE,
        },
        "optional": dict(annotations) or None,
    }
    return canonical_json(value).decode().translate(_GO_ESCAPES).encode()


def _config_blob(layers: list[Descriptor]) -> bytes:
    """The image config go-containerregistry computes for cosign's signature image.

    Field order is Go's (not sorted) so the bytes, and so the digest, equal cosign's.
    """
    config = {
        "architecture": "",
        "created": _ZERO_TIME,
        "history": [{"created": _ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [str(layer.digest) for layer in layers]},
        "config": {},
    }
    return json.dumps(config, separators=(",", ":")).encode()


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


def _layer_signed_by(
    layer: Descriptor, payload_digest: Digest, key: ec.EllipticCurvePublicKey, payload: bytes
) -> bool:
    if layer.digest != payload_digest or layer.media_type != SIMPLE_SIGNING:
        return False
    encoded = layer.annotation(SIGNATURE_ANNOTATION)
    if encoded is None:
        return False
    try:
        key.verify(base64.b64decode(encoded, validate=True), payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sign(
    reference: Reference,
    key_path: Path,
    password: bytes | None,
    *,
    annotations: Mapping[str, str] | None = None,
    session: Session | None = None,
) -> SignResult:
    """Sign the manifest ``reference`` names, cosign-style, keeping any signatures already there.

    ``annotations`` become the payload's ``optional`` claims (``cosign sign -a``). Signing the
    same payload again with the same key changes nothing (as cosign's duplicate detection).
    """
    claims = _check_annotations(annotations or {})
    key = load_private_key(key_path, password)
    with scoped(session) as active:
        store = active.store(reference)
        digest = _resolve(store, reference)
        sig_ref = reference.with_digest(None).with_tag(signature_tag(digest))
        payload = simple_signing_payload(docker_reference(reference), digest, claims)
        payload_blob = Blob.of_bytes(SIMPLE_SIGNING, payload)
        public_key = key.public_key()
        signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
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
    config = Blob.of_bytes(config_type, _config_blob(layers))
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


class Rejected(Exception):
    """One signature or attestation that does not count; ``rank`` orders reasons by how far the check got."""

    def __init__(self, reason: str, rank: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rank = rank


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise ValueError(f"duplicate key {key!r}")
        value[key] = item
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` matched case-insensitively, as Go's encoding/json does; ambiguity is refused."""
    if not isinstance(obj, dict):
        raise Rejected(f"the signed payload is not a simple-signing document (at {name!r})", 1)
    matches = [key for key in obj if key.casefold() == name.casefold()]
    if len(matches) > 1:
        raise Rejected(f"the signed payload is ambiguous: {len(matches)} keys spell {name!r}", 1)
    return obj[matches[0]] if matches else None


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
    key: ec.EllipticCurvePublicKey,
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
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Rejected("signature does not match", 0) from None
    # Only now, with the bytes vouched for by the key, is the payload parsed.
    try:
        document = json.loads(payload, object_pairs_hook=_strict_object, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"the signed payload is not valid JSON ({exc})", 1) from None
    critical = _field(document, "critical")
    kind = _field(critical, "type")
    if kind != COSIGN_SIGNATURE_TYPE:
        raise Rejected(f"the signed payload is of type {kind!r}, not {COSIGN_SIGNATURE_TYPE!r}", 2)
    bound = _field(_field(critical, "image"), "docker-manifest-digest")
    if bound != str(digest):
        raise Rejected(f"the signed payload signs {bound}, not this artifact", 3)
    identity = _field(_field(critical, "identity"), "docker-reference")
    optional = _field(document, "optional")
    if optional is not None and not isinstance(optional, dict):
        raise Rejected("the signed payload's optional section is not an object", 2)
    claims: dict[str, Any] = optional or {}
    for name, value in required.items():
        if claims.get(name) != value:
            raise Rejected(f"the signed payload lacks annotation {name}={value}", 4)
    return VerifiedSignature(
        payload_digest=layer.digest,
        signature=encoded,
        docker_reference=identity if isinstance(identity, str) else "",
        annotations=claims,
    )


def verify(
    reference: Reference,
    public_key_path: Path,
    *,
    required_annotations: Mapping[str, str] | None = None,
    session: Session | None = None,
) -> VerifyResult:
    """The signatures on exactly the manifest ``reference`` names that verify with the public key.

    A signature counts when the ECDSA signature matches the payload's exact bytes, the payload
    is a cosign simple-signing document binding this digest, and its ``optional`` claims hold
    every ``required_annotations`` pair. Raises IntegrityError when the artifact is unsigned or
    no signature counts, with the reason of the signature that came closest.
    """
    required = dict(required_annotations or {})
    key = load_public_key(public_key_path)
    with scoped(session) as active:
        store = active.store(reference)
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
