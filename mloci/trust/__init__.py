"""Signature wire formats and keys, without I/O on stores: the pieces ``ops.sign`` and ``ops.attest`` use.

- :mod:`mloci.trust.keys`: ECDSA P-256 and Ed25519 keys (PEM), signing and verifying bytes.
- :mod:`mloci.trust.cosign`: cosign's legacy *simple signing* payload and ``.sig`` image.
- :mod:`mloci.trust.dsse`: DSSE envelopes and their pre-authentication encoding.
- :mod:`mloci.trust.intoto`: in-toto Statement v1 and SLSA Provenance v1.
- :mod:`mloci.trust.bundle`: sigstore bundles v0.3 (key-based, written and verified here).
- :mod:`mloci.trust.rekor`: Rekor v1 and v2 evidence (inclusion proof, checkpoint, SET) checked offline.
- :mod:`mloci.trust.timestamp`: RFC 3161 signed timestamps checked against the root's TSAs.
- :mod:`mloci.trust.keyless`: keyless bundle verification against a trusted root (``sigstore`` extra).
- :mod:`mloci.trust.verifier`: whose signature counts (key or identity) and offline bundle checks.
- :mod:`mloci.trust.model_signing`: OpenSSF Model Signing v1.0 statements over a file tree.

Nothing here opens a store; dependencies point down only (``types``, ``errors``).
"""

from __future__ import annotations

from typing import Any

from mloci.types.text import escape_controls

# What to do about a rejection, by how far the check got (the ranks Rejected's raisers use):
# 5 the subject, 6 the log, chain or timestamps, 7 the identity or issuer. (Signature mismatches,
# rank 2, say "altered or signed by another key" in their reason already.)
_ADVICE = {
    5: "the signature is for another artifact: check the digest or file you verify",
    6: "check that --trusted-root (or $MLOCI_TRUSTED_ROOT) is the sigstore trusted root the signer used",
    7: "if that signer is one you trust, verify with the identity and issuer its certificate names",
}


class Rejected(Exception):
    """One signature or attestation that does not count; ``rank`` orders reasons by how far the check got."""

    def __init__(self, reason: str, rank: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rank = rank

    @property
    def advice(self) -> str | None:
        """What a user can do about it (the hint of the error that reports it), when there is one thing."""
        return _ADVICE.get(self.rank)


def shown(value: object, limit: int = 200) -> str:
    """``value`` (from a bundle, a certificate or a registry) safe for a terminal and short.

    Control characters and bidi overrides are escaped (:func:`mloci.types.text.escape_controls`)
    and the text is cut at ``limit`` characters.
    """
    escaped = escape_controls(str(value))
    return escaped if len(escaped) <= limit else escaped[:limit] + "…"


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one: outside input navigated without crashing."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []
