"""Keyless (Fulcio certificate) sigstore bundles, verified offline against a ``trusted_root.json``.

The cryptography of the certificate path is sigstore-python's (the optional ``mloci[sigstore]``
extra): the certificate chains to a Fulcio CA of the trusted root at the signing time (from the
Rekor integrated time or an RFC 3161 timestamp), its embedded SCT verifies with a CT log of the
root, the Rekor entry's inclusion proof, checkpoint and SET verify and log this signature, and
the signature verifies with the certificate's key. mloci adds the identity rule (exact or
regular-expression SAN and OIDC issuer, as cosign's ``--certificate-identity[-regexp]`` and
``--certificate-oidc-issuer[-regexp]``) and the in-toto subject check.

The trusted root is ``--trusted-root FILE``, else ``$MLOCI_TRUSTED_ROOT``, else the public-good
root in sigstore-python's TUF cache, read offline (``docs/trust.md`` says how to refresh it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from mloci.errors import UnsupportedError, UsageError
from mloci.trust import Rejected, shown
from mloci.trust.bundle import Bundle, Verified
from mloci.trust.intoto import COSIGN_SIGN_V1, check_statement
from mloci.types.digest import Digest

TRUSTED_ROOT_ENV: Final = "MLOCI_TRUSTED_ROOT"
_SAN_OTHERNAME: Final = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
_ISSUER_V1: Final = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_ISSUER_V2: Final = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


@dataclass(frozen=True)
class IdentityRule:
    """Who must have signed: the certificate's SAN and OIDC issuer, each exact or a full-match regexp."""

    identity: str | None = None
    issuer: str | None = None
    identity_regexp: str | None = None
    issuer_regexp: str | None = None

    def __post_init__(self) -> None:
        if (self.identity is None) == (self.identity_regexp is None):
            raise UsageError("give exactly one of --certificate-identity and --certificate-identity-regexp")
        if (self.issuer is None) == (self.issuer_regexp is None):
            raise UsageError(
                "give exactly one of --certificate-oidc-issuer and --certificate-oidc-issuer-regexp"
            )
        for pattern in (self.identity_regexp, self.issuer_regexp):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise UsageError(f"bad regular expression {pattern!r}: {exc}") from None

    def describe(self) -> str:
        who = self.identity or f"/{self.identity_regexp}/"
        issuer = self.issuer or f"/{self.issuer_regexp}/"
        return f"{who} (issuer {issuer})"

    def check(self, certificate: x509.Certificate) -> tuple[str, str]:
        """The matching SAN and the issuer; Rejected when the certificate is someone else's."""
        issuer = certificate_issuer(certificate)
        if issuer is None:
            raise Rejected("the certificate names no OIDC issuer (it is not a Fulcio certificate)", 7)
        if not (issuer == self.issuer if self.issuer is not None else _full(self.issuer_regexp, issuer)):
            wanted = (
                shown(self.issuer) if self.issuer is not None else f"regexp /{shown(self.issuer_regexp)}/"
            )
            raise Rejected(
                f"certificate OIDC issuer {shown(issuer)} does not match the required issuer {wanted}", 7
            )
        names = certificate_identities(certificate)
        for name in names:
            if name == self.identity if self.identity is not None else _full(self.identity_regexp, name):
                return name, issuer
        listed = ", ".join(shown(n) for n in names) or "(none: no e-mail, URI or Fulcio username SAN)"
        wanted = (
            shown(self.identity) if self.identity is not None else f"regexp /{shown(self.identity_regexp)}/"
        )
        raise Rejected(f"certificate identity {listed} does not match the required identity {wanted}", 7)


def _full(pattern: str | None, value: str) -> bool:
    return pattern is not None and re.fullmatch(pattern, value) is not None


def certificate_identities(certificate: x509.Certificate) -> list[str]:
    """The SAN values sigstore treats as identities: e-mail, URI and sigstore's otherName."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = [
        *san.get_values_for_type(x509.RFC822Name),
        *san.get_values_for_type(x509.UniformResourceIdentifier),
    ]
    for other in san.get_values_for_type(x509.OtherName):
        # Fulcio's username identity (docs/oid-info.md): a DER UTF8String. Any other otherName
        # type, or a value that is not exactly one well-formed UTF8String, is never an identity.
        text = _strict_utf8_string(other.value) if other.type_id == _SAN_OTHERNAME else None
        if text is not None:
            names.append(text)
    return names


def _strict_utf8_string(value: bytes) -> str | None:
    """The text of ``value`` when it is exactly one DER UTF8String (tag 0x0c, minimal length), else None."""
    if len(value) < 2 or value[0] != 0x0C:
        return None
    length, start = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(value) < 2 + count or value[2] == 0:
            return None
        length, start = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
        if length < 0x80:
            return None
    if len(value) != start + length:
        return None
    try:
        return value[start:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _der_utf8(value: bytes) -> str:
    """A DER UTF8String's text (tag 0x0c, short or long length)."""
    if len(value) >= 2 and value[0] == 0x0C:
        length, start = value[1], 2
        if length & 0x80:
            count = length & 0x7F
            length, start = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
        return value[start : start + length].decode("utf-8", "replace")
    return value.decode("utf-8", "replace")


def certificate_issuer(certificate: x509.Certificate) -> str | None:
    """The OIDC issuer Fulcio recorded (extension 1.3.6.1.4.1.57264.1.8, else the older .1.1)."""
    for oid, der in ((_ISSUER_V2, True), (_ISSUER_V1, False)):
        try:
            ext = certificate.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
        return _der_utf8(raw) if der else raw.decode("utf-8", "replace")
    return None


def _sigstore() -> Any:
    try:
        import sigstore.verify  # noqa: PLC0415
    except ImportError:
        raise UnsupportedError(
            "keyless (certificate) verification needs the sigstore package",
            hint="pip install 'mloci[sigstore]'",
        ) from None
    return sigstore


def _first_problem(exc: Exception) -> str:
    """One line for a loader's error (pydantic lists every field on lines of their own)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            found = errors()
            first = found[0]
            where = ".".join(str(part) for part in first["loc"])
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            return shown(f"{where + ': ' if where else ''}{first['msg']}{more}", 200)
        except (TypeError, KeyError, IndexError):
            pass
    text = str(exc).splitlines()
    return shown(text[0] if text else type(exc).__name__, 200)


def trusted_root_path(given: Path | None) -> Path | None:
    """``--trusted-root``, else $MLOCI_TRUSTED_ROOT; None means sigstore's offline TUF cache."""
    if given is not None:
        return given
    env = os.environ.get(TRUSTED_ROOT_ENV)
    return Path(env) if env else None


def verify_keyless(
    data: bytes,
    bundle: Bundle,
    digest: Digest,
    rule: IdentityRule,
    *,
    trusted_root: Path | None = None,
    predicate_type: str | None = None,
) -> Verified:
    """Verify a certificate bundle (raw bytes ``data``, parsed ``bundle``) over the artifact ``digest``."""
    if bundle.certificate is None:
        raise Rejected("the bundle is signed with a key, not a certificate: verify it with --key", 1)
    _sigstore()
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
    from sigstore.hashes import Hashed  # noqa: PLC0415
    from sigstore.models import Bundle as SigstoreBundle  # noqa: PLC0415
    from sigstore.models import ClientTrustConfig, TrustedRoot  # noqa: PLC0415
    from sigstore.verify import Verifier  # noqa: PLC0415
    from sigstore_models.common.v1 import HashAlgorithm  # noqa: PLC0415

    try:
        certificate = x509.load_der_x509_certificate(bundle.certificate)
    except ValueError:
        raise Rejected("the bundle's signing certificate is not a DER X.509 certificate", 1) from None
    identity, issuer = rule.check(certificate)

    class _Policy:
        def verify(self, cert: x509.Certificate) -> None:
            rule.check(cert)

    path = trusted_root_path(trusted_root)
    try:
        if path is not None:
            if not path.is_file():
                raise UsageError(f"trusted root {path} does not exist")
            root = TrustedRoot.from_file(str(path))
        else:
            root = ClientTrustConfig.production(offline=True).trusted_root
        verifier = Verifier(trusted_root=root)
    except UsageError:
        raise
    except (SigstoreError, ValueError, OSError) as exc:
        raise UsageError(
            f"cannot load the trusted root{f' {path}' if path else ''}: {_first_problem(exc)}",
            hint=f"pass a sigstore trusted_root.json with --trusted-root FILE or set {TRUSTED_ROOT_ENV}",
        ) from None
    try:
        parsed = SigstoreBundle.from_json(data)
    except (SigstoreError, ValueError) as exc:
        raise Rejected(f"sigstore cannot read the bundle: {shown(exc)}", 1) from None
    statement: dict[str, Any] | None = None
    kind: str | None = None
    try:
        if bundle.envelope is not None:
            payload_type, payload = verifier.verify_dsse(parsed, _Policy())
            kind, statement = check_statement(payload_type, payload, digest, predicate_type)
        else:
            if predicate_type not in (None, COSIGN_SIGN_V1):
                raise Rejected("a message signature carries no attestation", 4)
            if bundle.message_digest is not None and bundle.message_digest != bytes.fromhex(digest.encoded):
                raise Rejected(
                    f"the bundle signs artifact sha256:{bundle.message_digest.hex()[:12]}…, not {digest}", 5
                )
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(digest.encoded))
            verifier.verify_artifact(hashed, parsed, _Policy())
    except Rejected:
        raise
    except SigstoreError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Rejected(f"sigstore verification failed: {shown(reason)}", 6) from None
    return Verified(
        content=bundle.content,
        digest=digest,
        predicate_type=kind,
        statement=statement,
        signer=shown(identity),
        issuer=shown(issuer),
    )
