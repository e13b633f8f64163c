"""Pull only what a trusted key signed: verify first, then fetch exactly the verified digest.

The reference is resolved to a manifest digest once, by the signature check
(:func:`mloci.ops.sign.verify`), and the pull then fetches that pinned digest, so a tag moved
between the check and the download cannot slip other content in. An unsigned artifact, or one
whose signatures do not verify with the key, raises IntegrityError before anything is
downloaded or written: the output directory is not even created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mloci.ops.progress import TransferListener
from mloci.ops.pull import PullResult, pull
from mloci.ops.sign import VerifyResult, verify
from mloci.store import StoreOptions
from mloci.trust.keyless import IdentityRule
from mloci.types.reference import Reference


@dataclass(frozen=True)
class VerifiedPullResult:
    pulled: PullResult
    verification: VerifyResult

    def to_json(self) -> dict[str, Any]:
        return {**self.pulled.to_json(), "verification": self.verification.to_json()}


def pull_verified(
    reference: Reference,
    output: Path,
    public_key: Path | None,
    *,
    identity: IdentityRule | None = None,
    trusted_root: Path | None = None,
    required_annotations: Mapping[str, str] | None = None,
    options: StoreOptions | None = None,
    filters: Sequence[str] = (),
    force: bool = False,
    listener: TransferListener | None = None,
) -> VerifiedPullResult:
    """Verify a signature of ``reference`` (by ``public_key``, or keyless by ``identity``), then pull that digest."""
    verification = verify(
        reference,
        public_key,
        identity=identity,
        trusted_root=trusted_root,
        required_annotations=required_annotations,
        options=options,
    )
    pulled = pull(
        verification.reference,  # pinned to the digest whose signature verified
        output,
        options=options,
        filters=filters,
        force=force,
        listener=listener,
    )
    return VerifiedPullResult(pulled=pulled, verification=verification)
