"""Verifying sigstore bundles offline: whose signature counts (:class:`TrustRule`) and the checks.

No store and no network: a bundle's bytes (or a file) against an artifact digest, by key
(:func:`mloci.trust.bundle.verify_with_key`, ``cryptography`` only) or by keyless identity
(:func:`mloci.trust.keyless.verify_keyless`, the ``sigstore`` extra). ``ops.sign`` finds the
bundles in registries and uses these.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mloci.errors import IntegrityError, UsageError
from mloci.trust import Rejected, legacy_keyless, rekor, shown, timestamp
from mloci.trust.bundle import Bundle, Verified, verify_with_key
from mloci.trust.dsse import Envelope, signed_by
from mloci.trust.intoto import COSIGN_SIGN_V1, check_statement
from mloci.trust.keyless import TRUSTED_ROOT_ENV, IdentityRule, trusted_root_path, verify_keyless
from mloci.trust.keys import PublicKey, key_hint, load_public_key
from mloci.types import jsontext
from mloci.types.digest import Digest, hash_file

# Bundles are a few KiB (a certificate chain and log proofs at most); a larger one is refused unread.
MAX_BUNDLE = 1 << 20


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


def load_root(path: Path | None) -> dict[str, Any] | None:
    path = trusted_root_path(path)
    if path is None:
        return None
    try:
        document = jsontext.loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"trusted root {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"trusted root {path} is not readable JSON: {exc}") from None
    if not isinstance(document, dict) or "tlogs" not in document:
        raise UsageError(f"{path} is not a sigstore trusted_root.json (no tlogs)")
    return document


def keyless_root(path: Path | None) -> dict[str, Any]:
    """The trusted root for keyless checks mloci does itself: ``--trusted-root``, $MLOCI_TRUSTED_ROOT,
    else the public-good root in sigstore-python's TUF cache (read offline)."""
    document = load_root(path)
    if document is not None:
        return document
    hint = f"pass --trusted-root FILE or set {TRUSTED_ROOT_ENV}"
    try:
        from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
        from sigstore.models import ClientTrustConfig  # noqa: PLC0415
    except ImportError:
        raise UsageError("no trusted root for keyless verification", hint=hint) from None
    try:
        inner = ClientTrustConfig.production(offline=True).trusted_root._inner
        loaded = jsontext.loads(inner.to_json())
    except (SigstoreError, OSError, ValueError) as exc:
        raise UsageError(
            f"cannot read sigstore's cached trusted root ({shown(exc, 120)})", hint=hint
        ) from None
    if not isinstance(loaded, dict):
        raise UsageError("sigstore's trusted root is not a JSON object", hint="pass --trusted-root FILE")
    return loaded


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
        root = keyless_root(rule.trusted_root)
        if root:
            # sigstore-python checked the log and the timestamps; this records which entry and when,
            # and is stricter: every timestamp the bundle carries must verify (sigstore skips bad ones).
            times = timestamp.verify_timestamps(bundle.document, bundle.signature, root)
            logs = rekor.log_keys(root)
            evidence = [rekor.verify_entry(entry, logs, times) for entry in bundle.tlog_entries]
            verified = replace(verified, log=evidence[0] if evidence else None, timestamps=tuple(times))
        return verified
    assert rule.key is not None  # noqa: S101
    if bundle.certificate is not None:
        raise Rejected("the bundle is signed with a certificate: verify it with --certificate-identity", 1)
    return verify_with_key(
        bundle,
        rule.key,
        digest,
        trusted_root=load_root(rule.trusted_root),
        predicate_type=predicate_type,
        require_tlog=rule.require_tlog,
    )


@dataclass(frozen=True)
class BundleVerifyResult:
    path: Path
    verified: Verified

    def to_json(self) -> dict[str, Any]:
        return {"bundle": str(self.path), "verified": True, **self.verified.to_json()}


def read_bundle_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_BUNDLE:
            raise UsageError(f"{path} is larger than {MAX_BUNDLE} bytes; not a sigstore bundle")
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
    data = read_bundle_file(path)
    try:
        if _is_bare_envelope(data):
            verified = _verify_bare_envelope(data, digest, rule, predicate_type)
        elif _blob_bundle(data) is not None:
            verified = _verify_blob_bundle(data, digest, rule, predicate_type)
        else:
            verified = verify_bundle_bytes(data, digest, rule, predicate_type=predicate_type)
    except Rejected as rejected:
        raise IntegrityError(
            f"{path.name} does not verify for {digest}: {rejected.reason}", hint=rejected.advice
        ) from None
    return BundleVerifyResult(path, verified)


def _blob_bundle(data: bytes) -> dict[str, Any] | None:
    try:
        document = jsontext.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if legacy_keyless.is_blob_bundle(document) else None


def _verify_blob_bundle(data: bytes, digest: Digest, rule: TrustRule, predicate_type: str | None) -> Verified:
    """cosign v1/v2 ``sign-blob --bundle`` files: a signature over the blob, a certificate, a Rekor SET."""
    document = _blob_bundle(data)
    assert document is not None  # noqa: S101
    if digest.algorithm != "sha256":
        raise Rejected(f"cosign blob signatures are over SHA-256, not {digest.algorithm}", 2)
    if predicate_type not in (None, COSIGN_SIGN_V1):
        raise Rejected("a blob signature carries no attestation", 4)
    root = keyless_root(rule.trusted_root) if rule.identity is not None else load_root(rule.trusted_root)
    signed = legacy_keyless.verify_blob_bundle(
        document, bytes.fromhex(digest.encoded), key=rule.key, rule=rule.identity, root=root
    )
    if rule.require_tlog and signed.log is None:
        raise Rejected("the bundle has no transparency-log entry verified against a trusted root", 6)
    return Verified("message-signature", digest, None, None, signed.signer, signed.issuer, signed.log)


def _is_bare_envelope(data: bytes) -> bool:
    try:
        document = jsontext.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(document, dict) and "payloadType" in document and "mediaType" not in document


def verify_envelope(
    data: bytes, key: PublicKey, digest: Digest, predicate_type: str | None, *, legacy: bool = False
) -> tuple[str, dict[str, Any]]:
    """The predicate type and statement of the DSSE envelope ``data`` signed by ``key`` about ``digest``.

    Rejected unless a signature by ``key`` verifies over the PAE and the payload is an in-toto
    statement of ``predicate_type`` (None: any) whose subject is ``digest`` (in-toto v0.1 and early
    cosign's payloadType too with ``legacy``: cosign v1/v2 ``.att`` layers).
    """
    try:
        envelope = Envelope.from_json(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"not a DSSE envelope ({shown(exc, 120)})", 1) from None
    if not signed_by(envelope, key):
        raise Rejected("signature does not match (the envelope was altered or signed by another key)", 2)
    # Only bytes vouched for by the key are parsed from here on.
    return check_statement(envelope.payload_type, envelope.payload, digest, predicate_type, legacy=legacy)


def _verify_bare_envelope(
    data: bytes, digest: Digest, rule: TrustRule, predicate_type: str | None
) -> Verified:
    if rule.key is None:
        raise Rejected("a bare DSSE envelope carries no certificate: verify it with --key", 1)
    kind, statement = verify_envelope(data, rule.key, digest, predicate_type, legacy=True)
    return Verified("dsse-envelope", digest, kind, statement, f"key {key_hint(rule.key)}")
