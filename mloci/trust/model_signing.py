"""OpenSSF Model Signing v1.0 (sigstore/model-transparency): a signature over every file of a model directory.

The signature is a sigstore bundle whose DSSE envelope carries an in-toto Statement v1 with
``predicateType`` ``https://model_signing/signature/v1.0``. The predicate lists every file as a
resource ``{name: <posix path relative to the model>, algorithm: sha256, digest: <hex>}`` (sorted
by name) with the serialization used (``method: files``, ``hash_type: sha256``,
``allow_symlinks: false``, ``ignore_paths``); the single subject is named after the model
directory and its digest is SHA-256 over the concatenated raw file digests, in that order.

Files are hashed once, streaming. Symbolic links are refused, as model-signing does by default.
Key-based signatures written here carry model-signing's key hint (hex SHA-256 of the PEM public
key), which its verifier compares; cosign's hint convention differs, and neither decides anything
in mloci.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

from mloci.errors import UsageError
from mloci.trust import Rejected, shown
from mloci.trust.bundle import BUNDLE_V03
from mloci.trust.dsse import Envelope, sign_envelope
from mloci.trust.intoto import STATEMENT_TYPE
from mloci.trust.keys import PrivateKey, PublicKey, public_pem
from mloci.types.digest import Digest, hash_file

PREDICATE: Final = "https://model_signing/signature/v1.0"
SIGNATURE_NAME: Final = "model.sig"
# model-signing ignores these by default (its --ignore_git_paths); mloci also ignores its own marker.
DEFAULT_IGNORE: Final = (".git", ".gitattributes", ".github", ".gitignore")


def _ignored(name: str, ignore: Iterable[str]) -> bool:
    return any(name == path or name.startswith(path.rstrip("/") + "/") for path in ignore)


@dataclass(frozen=True)
class Resource:
    name: str  # posix path relative to the model directory
    digest: str  # sha256 hex


def hash_tree(root: Path, ignore: Iterable[str]) -> list[Resource]:
    """Every regular file under ``root`` not in ``ignore``, sorted by name, hashed once (streaming)."""
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    ignore = tuple(ignore)
    found: list[Resource] = []
    for current, dirs, files in os.walk(root):
        base = Path(current)
        for entry in [*dirs, *files]:
            path = base / entry
            if path.is_symlink():
                rel = path.relative_to(root).as_posix()
                if not _ignored(rel, ignore):
                    raise UsageError(f"{rel} is a symbolic link; model signatures cover regular files only")
        dirs[:] = sorted(d for d in dirs if not _ignored((base / d).relative_to(root).as_posix(), ignore))
        for name in files:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if _ignored(rel, ignore) or path.is_symlink():
                continue
            found.append(Resource(rel, hash_file(path)[0].encoded))
    # model-signing orders resources as paths (component by component), not as strings:
    # "a/b" comes before "a.txt". The subject digest depends on this order.
    return sorted(found, key=lambda r: PurePosixPath(r.name).parts)


def model_digest(resources: Iterable[Resource]) -> Digest:
    """The subject digest: SHA-256 over the raw file digests in resource order."""
    hasher = hashlib.sha256()
    for resource in resources:
        hasher.update(bytes.fromhex(resource.digest))
    return Digest("sha256", hasher.hexdigest())


def statement(model_name: str, resources: list[Resource], ignore_paths: list[str]) -> bytes:
    value: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": model_digest(resources).encoded}}],
        "predicateType": PREDICATE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": ignore_paths,
            },
            "resources": [{"name": r.name, "algorithm": "sha256", "digest": r.digest} for r in resources],
        },
    }
    return json.dumps(value, indent=2).encode()


def model_signing_hint(key: PublicKey) -> str:
    """model-signing's ``publicKey.hint``: hex SHA-256 of the PEM SubjectPublicKeyInfo."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def bundle_of(envelope: Envelope, key: PublicKey) -> bytes:
    """A key-based bundle around a signed model statement, with model-signing's key hint."""
    document = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": model_signing_hint(key)}, "tlogEntries": []},
        "dsseEnvelope": envelope.to_dict(keyids=False),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def sign_tree(root: Path, key: PrivateKey, ignore_paths: list[str]) -> bytes:
    """A key-based model signature bundle over the files of ``root`` (``ignore_paths`` left out)."""
    resources = hash_tree(root, ignore_paths)
    envelope = sign_envelope(statement(root.resolve().name, resources, ignore_paths), key)
    return bundle_of(envelope, key.public_key())


def signed_ignore_paths(signed: dict[str, Any]) -> list[str]:
    """The ``ignore_paths`` a (verified) model-signing statement records."""
    serialization = (signed.get("predicate") or {}).get("serialization") or {}
    paths = serialization.get("ignore_paths") or []
    return [str(p) for p in paths if isinstance(p, str)]


def signed_resources(signed: dict[str, Any]) -> list[Resource]:
    """The resources a (verified) model-signing statement lists, in its order."""
    return [
        Resource(str(r.get("name")), str(r.get("digest")))
        for r in (signed.get("predicate") or {}).get("resources") or []
        if isinstance(r, dict)
    ]


def compare(signed: dict[str, Any], actual: list[Resource]) -> None:
    """Rejected (naming the files) unless the verified statement lists exactly ``actual``."""
    listed = {
        str(r.get("name")): str(r.get("digest"))
        for r in (signed.get("predicate") or {}).get("resources") or []
        if isinstance(r, dict)
    }
    present = {r.name: r.digest for r in actual}
    missing = sorted(set(listed) - set(present))
    extra = sorted(set(present) - set(listed))
    changed = sorted(n for n in set(listed) & set(present) if listed[n] != present[n])
    problems = [
        f"{label}: {', '.join(shown(n) for n in names[:5])}{' …' if len(names) > 5 else ''}"
        for label, names in (("changed", changed), ("missing", missing), ("not signed", extra))
        if names
    ]
    if problems:
        raise Rejected(f"the files differ from the signed model ({'; '.join(problems)})", 5)
