"""Signing keys: ECDSA P-256 (SHA-256, ASN.1 DER signatures) and Ed25519, as cosign uses them.

The private key is PKCS#8 PEM (encrypted with a passphrase), the public key SubjectPublicKeyInfo
PEM, which cosign takes with ``--key``. Passphrases never appear in a message or an exception.
A key's *hint* (sigstore bundles' ``publicKey.hint``) is base64 of the SHA-256 of its DER SPKI;
its *keyid* (DSSE) is the same digest in hex. Both are hints only and never decide anything.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mloci.errors import ConflictError, UsageError

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
Algorithm = Literal["ecdsa-p256", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = ("ecdsa-p256", "ed25519")


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _supported(key: object) -> bool:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return True
    return isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1
    )


def _unsupported(key: object, source: object) -> UsageError:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        kind = f"ECDSA {key.curve.name}"
    else:
        kind = type(key).__name__.lstrip("_").removesuffix("PrivateKey").removesuffix("PublicKey") or "?"
    return UsageError(f"{source} is a {kind} key; mloci signs and verifies with ECDSA P-256 or Ed25519 keys")


def _cosign_format(data: bytes) -> bool:
    return b"SIGSTORE PRIVATE KEY" in data or b"COSIGN PRIVATE KEY" in data


def _encrypted_pem(data: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def is_encrypted(path: Path) -> bool:
    """Whether the PEM private key at ``path`` needs a passphrase (so a caller knows to ask for one)."""
    return _encrypted_pem(_read_key_file(path, "private key"))


def load_private_key(path: Path, password: bytes | None) -> PrivateKey:
    """The ECDSA P-256 or Ed25519 private key in PEM file ``path``, decrypted with ``password``.

    Raises UsageError (one line) for a missing file, a missing or wrong passphrase, another key
    type, or cosign's own encrypted key format (not PKCS#8).
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
    if not _supported(key):
        raise _unsupported(key, path)
    assert isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)  # noqa: S101
    return key


def public_key_from_pem(data: bytes, source: object = "the key") -> PublicKey:
    """The ECDSA P-256 or Ed25519 public key in PEM ``data`` (SubjectPublicKeyInfo, as cosign writes)."""
    if b"PRIVATE KEY" in data:
        raise UsageError(f"{source} is a private key; verify with the public key (the .pub file)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(f"{source} is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) or not _supported(key):
        raise _unsupported(key, source)
    return key


def load_public_key(path: Path) -> PublicKey:
    """The ECDSA P-256 or Ed25519 public key in PEM file ``path``."""
    return public_key_from_pem(_read_key_file(path, "public key"), path)


def spki_der(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: PublicKey) -> str:
    """A hint naming ``key``: the SHA-256 (hex) of its DER SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_der(key)).hexdigest()


def key_hint(key: PublicKey) -> str:
    """sigstore's ``publicKey.hint`` for ``key``: base64 of the SHA-256 of its DER SPKI (as cosign writes)."""
    return base64.b64encode(hashlib.sha256(spki_der(key)).digest()).decode()


def sign_bytes(key: PrivateKey, message: bytes) -> bytes:
    """A signature over ``message``: ECDSA P-256 / SHA-256 (ASN.1 DER) or Ed25519."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def verifies(key: PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` over ``message`` verifies with ``key`` (never raises for bad input)."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


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
    prefix: Path,
    password: bytes | None,
    *,
    allow_unencrypted: bool = False,
    algorithm: Algorithm = "ecdsa-p256",
) -> tuple[Path, Path]:
    """Create ``<prefix>.key`` (PKCS#8 PEM, mode 0600) and ``<prefix>.pub``; return both paths.

    The private key is encrypted with ``password``. An unencrypted key is written only when
    ``password`` is explicitly ``b""`` *and* ``allow_unencrypted`` is set. Existing files are
    never overwritten (ConflictError).
    """
    if not prefix.name or prefix.name in (".", ".."):
        raise UsageError(f"key prefix {str(prefix)!r} names no file")
    if algorithm not in ALGORITHMS:
        raise UsageError(f"unknown key algorithm {algorithm!r}", hint=f"use one of {', '.join(ALGORITHMS)}")
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
    key: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm == "ed25519"
        else ec.generate_private_key(ec.SECP256R1())
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    try:
        _write_new(private_path, private_pem, 0o600)
        try:
            _write_new(public_path, public_pem(key.public_key()), 0o644)
        except BaseException:
            private_path.unlink(missing_ok=True)  # no half key pair
            raise
    except OSError as exc:
        raise UsageError(f"cannot write the key pair at {prefix}: {exc.strerror or exc}") from None
    return private_path, public_path
