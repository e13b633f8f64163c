"""Transparency-log evidence in sigstore bundles (Rekor v1 and v2), checked offline against a trusted root.

For one ``tlogEntries[]`` item this verifies, with ``cryptography`` only:

- the **inclusion proof** (RFC 6962 / RFC 9162 §2.1.3.2): the leaf ``SHA-256(0x00 || body)`` and the
  audit path recompute ``rootHash`` for ``logIndex`` in a tree of ``treeSize``;
- the **checkpoint** (a signed note, transparency-dev ``checkpoint.md``): origin, size and root
  equal the proof's, and a signature line by the log verifies with the log's key from the trusted
  root (the 4-byte key hint is the start of the log id, SHA-256 of the key's DER SPKI);
- the **SET** (``inclusionPromise``), where present: the log's signature over the RFC 8785
  canonical JSON ``{body, integratedTime, logID, logIndex}``;
- that the log id names a log of the trusted root, valid at the integrated time.

Rekor v2 entries (rekor-tiles, kind version ``0.0.2``) have no integrated time and no SET: the
checkpoint's origin must be the log's host name, and the log's key valid at the bundle's verified
RFC 3161 times (:func:`verify_entry`'s ``times``).

Binding the entry to the signature (same artifact hash, signature and key) is the caller's job:
:func:`entry_body` returns the logged body. ``envelopeHash`` of a ``dsse`` entry depends on how
the signer serialized the envelope, so callers bind through payload hash, signature and verifier.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.hazmat.primitives.serialization import load_der_public_key

from mloci.trust import Rejected, items, obj, shown
from mloci.trust.keys import PublicKey, verifies
from mloci.types import jsontext

# Ranks for Rejected: past the signature, the log evidence is what failed.
_RANK = 6


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise Rejected(f"transparency log entry: {what} is missing", _RANK)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(f"transparency log entry: {what} is not base64", _RANK) from None


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Rejected(f"transparency log entry: {what} is not a number", _RANK) from None


def _moment(seconds: int) -> datetime:
    """The UTC time of a log's integrated time; Rejected when it is no time at all (out of range)."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        raise Rejected(f"transparency log entry: integrated time {seconds} is out of range", _RANK) from None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class LogKey:
    """A transparency log (or CT log) of a trusted root: its id, key and validity window."""

    log_id: bytes
    key: PublicKey
    start: datetime | None
    end: datetime | None
    base_url: str

    def valid_at(self, moment: datetime) -> bool:
        return (self.start is None or self.start <= moment) and (self.end is None or moment <= self.end)


def log_keys(trusted_root: dict[str, Any], section: str = "tlogs") -> list[LogKey]:
    """The logs of a sigstore ``trusted_root.json`` section (``tlogs`` or ``ctlogs``) with usable keys."""
    found: list[LogKey] = []
    for item in items(trusted_root.get(section)):
        try:
            raw = base64.b64decode(item["publicKey"]["rawBytes"])
            log_id = base64.b64decode(item["logId"]["keyId"])
            key = load_der_public_key(raw)
        except (KeyError, TypeError, ValueError):
            continue
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: PLC0415

        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            continue
        valid = obj(item["publicKey"].get("validFor"))
        found.append(
            LogKey(
                log_id, key, _time(valid.get("start")), _time(valid.get("end")), str(item.get("baseUrl", ""))
            )
        )
    return found


def entry_body(entry: dict[str, Any]) -> dict[str, Any]:
    """The logged entry (``canonicalizedBody``), parsed."""
    try:
        body = jsontext.loads(_b64(entry.get("canonicalizedBody"), "canonicalizedBody"))
    except (ValueError, UnicodeDecodeError):
        raise Rejected("transparency log entry: the body is not JSON", _RANK) from None
    if not isinstance(body, dict):
        raise Rejected("transparency log entry: the body is not an object", _RANK)
    return body


def _hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: whether ``proof`` shows leaf hash ``leaf`` at ``index`` in a tree of ``size``."""
    if index < 0 or index >= size:
        return False
    fn, sn = index, size - 1
    current = leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            current = _hash_children(sibling, current)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            current = _hash_children(current, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and current == root


def _check_checkpoint(envelope: Any, log: LogKey, size: int, root: bytes, origin: str | None = None) -> None:
    if not isinstance(envelope, str) or "\n\n" not in envelope:
        raise Rejected("transparency log entry: the checkpoint is missing or malformed", _RANK)
    body, _, signatures = envelope.partition("\n\n")
    lines = body.split("\n")
    if len(lines) < 3:
        raise Rejected("transparency log entry: the checkpoint is malformed", _RANK)
    if origin is not None and lines[0] != origin:
        raise Rejected(
            f"transparency log entry: the checkpoint is from {shown(lines[0])!r}, not {origin!r}", _RANK
        )
    if lines[1] != str(size) or lines[2] != base64.b64encode(root).decode():
        raise Rejected("transparency log entry: the checkpoint does not match the inclusion proof", _RANK)
    message = (body + "\n").encode()
    for line in signatures.split("\n"):
        if not line.startswith("\u2014 "):
            continue
        _, _, encoded = line[2:].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if raw[:4] == log.log_id[:4] and verifies(log.key, raw[4:], message):
            return
    raise Rejected("transparency log entry: no checkpoint signature verifies with the log's key", _RANK)


def _check_set(entry: dict[str, Any], log: LogKey, index: int, integrated: int) -> None:
    promise = entry.get("inclusionPromise")
    if not isinstance(promise, dict):
        return
    signature = _b64(promise.get("signedEntryTimestamp"), "signedEntryTimestamp")
    payload = {
        "body": entry.get("canonicalizedBody"),
        "integratedTime": integrated,
        "logID": log.log_id.hex(),
        "logIndex": index,
    }
    message = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    if not verifies(log.key, signature, message):
        raise Rejected("transparency log entry: the signed entry timestamp (SET) does not verify", _RANK)


@dataclass(frozen=True)
class LogEvidence:
    log_index: int
    integrated_time: datetime | None  # Rekor v1 only; a Rekor v2 entry has no integrated time
    log_url: str

    def to_json(self) -> dict[str, Any]:
        return {
            "logIndex": self.log_index,
            "integratedTime": self.integrated_time.isoformat() if self.integrated_time else None,
            "log": self.log_url,
        }


V1: Final = "0.0.1"
V2: Final = "0.0.2"


def is_v1(entry: dict[str, Any]) -> bool:
    """Whether the entry is a Rekor v1 entry (kind version 0.0.1)."""
    return obj(entry.get("kindVersion")).get("version") == V1


def _origin(base_url: str) -> str:
    """A Rekor v2 log's checkpoint origin: its base URL without the scheme (``log2025-1.rekor.sigstore.dev``)."""
    return base_url.split("://", 1)[-1].rstrip("/")


def verify_entry(entry: dict[str, Any], logs: list[LogKey], times: Sequence[datetime] = ()) -> LogEvidence:
    """Check one ``tlogEntries[]`` item against the trusted logs; Rejected with the reason otherwise.

    Rekor v1 (kind version 0.0.1): the log's key valid at the integrated time, inclusion proof,
    checkpoint and SET (where present). Rekor v2 (0.0.2, rekor-tiles): no integrated time and no
    SET; the inclusion proof and the checkpoint, whose origin must be the log's host name, and the
    log's key valid at each of ``times`` (the bundle's verified RFC 3161 timestamps).
    """
    kind = obj(entry.get("kindVersion"))
    version = kind.get("version") if isinstance(kind, dict) else None
    if version not in (V1, V2):
        raise Rejected(
            f"transparency log entry: kind version {shown(version)!r} is neither Rekor v1 (0.0.1) nor v2 (0.0.2)",
            _RANK,
        )
    log_id = _b64(obj(entry.get("logId")).get("keyId"), "logId")
    log = next((candidate for candidate in logs if candidate.log_id == log_id), None)
    if log is None:
        raise Rejected("transparency log entry: its log is not in the trusted root", _RANK)
    body = _b64(entry.get("canonicalizedBody"), "canonicalizedBody")
    # protojson omits zero values: a Rekor v2 shard's first entry has no "logIndex".
    index = _int(entry.get("logIndex", "0" if version == V2 else None), "logIndex")
    moment: datetime | None = None
    integrated = 0
    if version == V1:
        integrated = _int(entry.get("integratedTime"), "integratedTime")
        moment = _moment(integrated)
        if not log.valid_at(moment):
            raise Rejected(
                "transparency log entry: the log's key was not valid at the integrated time", _RANK
            )
    else:
        if entry.get("inclusionPromise"):
            raise Rejected("transparency log entry: a Rekor v2 entry cannot carry a SET", _RANK)
        for when in times:
            if not log.valid_at(when):
                raise Rejected(
                    f"transparency log entry: the log's key was not valid at the signed time {when.isoformat()}",
                    _RANK,
                )
    proof = entry.get("inclusionProof")
    if not isinstance(proof, dict):
        raise Rejected("transparency log entry: there is no inclusion proof", _RANK)
    hashes = proof.get("hashes")
    if hashes is None and version == V2:
        hashes = []  # protojson omits an empty list (a tree of one entry)
    if not isinstance(hashes, list):
        raise Rejected("transparency log entry: the inclusion proof has no hashes", _RANK)
    size = _int(proof.get("treeSize"), "treeSize")
    root = _b64(proof.get("rootHash"), "rootHash")
    leaf = hashlib.sha256(b"\x00" + body).digest()
    path = [_b64(h, "inclusion proof hash") for h in hashes]
    proof_index = _int(proof.get("logIndex", 0 if version == V2 else None), "inclusion proof logIndex")
    if version == V2 and proof_index != index:
        raise Rejected("transparency log entry: the inclusion proof is for another index", _RANK)
    if not verify_inclusion(leaf, proof_index, size, path, root):
        raise Rejected("transparency log entry: the inclusion proof does not verify", _RANK)
    origin = _origin(log.base_url) if version == V2 else None
    _check_checkpoint(obj(proof.get("checkpoint")).get("envelope"), log, size, root, origin)
    if version == V1:
        _check_set(entry, log, index, integrated)
    return LogEvidence(index, moment, log.base_url)


def verify_promise(
    body: str, integrated: int, log_index: int, log_id: bytes, signed_entry_timestamp: str, logs: list[LogKey]
) -> LogEvidence:
    """A Rekor v1 *inclusion promise* alone (cosign v2's ``dev.sigstore.cosign/bundle`` annotation).

    The SET must verify with the key of a log of the trusted root (``log_id``) valid at
    ``integrated``; ``body`` is the base64 ``canonicalizedBody`` the caller binds to the signature.
    """
    log = next((candidate for candidate in logs if candidate.log_id == log_id), None)
    if log is None:
        raise Rejected("transparency log entry: its log is not in the trusted root", _RANK)
    moment = _moment(integrated)
    if not log.valid_at(moment):
        raise Rejected("transparency log entry: the log's key was not valid at the integrated time", _RANK)
    entry = {"canonicalizedBody": body, "inclusionPromise": {"signedEntryTimestamp": signed_entry_timestamp}}
    _check_set(entry, log, log_index, integrated)
    return LogEvidence(log_index, moment, log.base_url)
