"""OpenSSF model signatures (:mod:`mloci.trust.model_signing`) over a directory or a registry artifact.

A directory's signature is the file ``model.sig`` beside the files; an artifact's is a sigstore
bundle referrer computed from the layer digests, so it holds for the directory ``pull`` writes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mloci.atomic import write_atomic
from mloci.errors import IntegrityError, UnsupportedError, UsageError
from mloci.ops.attach import attach_blob
from mloci.ops.sign import SignResult, VerifiedSignature, VerifyResult, bundle_referrers, fetch_bundle
from mloci.store import Session, scoped
from mloci.trust import Rejected, model_signing
from mloci.trust.bundle import BUNDLE_V03, CONTENT_ANNOTATION, PREDICATE_ANNOTATION, Bundle, Verified
from mloci.trust.dsse import sign_envelope
from mloci.trust.keys import load_private_key
from mloci.trust.verifier import TrustRule, read_bundle_file, verify_bundle_bytes
from mloci.types import annotations as ann
from mloci.types.blob import Blob
from mloci.types.bundle_metadata import PULL_MARKER
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.types.reference import Reference


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
        write_atomic(target, data)
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
    IntegrityError (exit 6) otherwise, naming the files that differ. The ``.mloci`` marker
    directory of a pulled directory is not a model file and is left out.
    """
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    path = signature or root / model_signing.SIGNATURE_NAME
    data = read_bundle_file(path)
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
        if (root / PULL_MARKER).is_file():
            ignore.append(".mloci")  # the marker a pull wrote, not a model file (docs/trust.md)
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
