"""One attachment at a time: does this signature or attestation referrer verify, and why (not)?

``mloci verify`` and ``mloci verify-attestation`` answer for an artifact as a whole (does any
signature count?). A catalog page shows each attachment with its own status, so this checks one
referrer — a sigstore bundle (a signature or a DSSE attestation, by key or keyless identity) or
a bare DSSE envelope (mloci ``attest --format dsse``, by key) — against each trust rule, with the
same fetches and checks those commands use (:mod:`mloci.ops.sign`, :mod:`mloci.ops.attest`,
:mod:`mloci.trust.verifier`). Nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mloci.ops.attest import fetch_envelope
from mloci.ops.sign import fetch_bundle
from mloci.store import Store
from mloci.trust import Rejected, shown
from mloci.trust.intoto import COSIGN_SIGN_V1
from mloci.trust.verifier import TrustRule, verify_bundle_bytes, verify_envelope
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.types.mediatype import DSSE_ENVELOPE, SIGSTORE_BUNDLE_PREFIX
from mloci.types.reference import Reference


@dataclass(frozen=True)
class ReferrerCheck:
    """The outcome for one referrer: verified by ``signer`` (the rule that matched), or why not."""

    verified: bool
    detail: str
    rule: str | None = None  # the key file or identity that verified it
    signer: str | None = None  # "key …" or the certificate identity
    predicate_type: str | None = None  # an attestation's in-toto predicate type (None: a signature)


def checkable(entry: Descriptor) -> bool:
    """Whether ``entry`` is something a trust rule can verify (a sigstore bundle or a DSSE envelope)."""
    kind = entry.artifact_type or ""
    return kind.startswith(SIGSTORE_BUNDLE_PREFIX) or kind == DSSE_ENVELOPE


def check_referrer(
    store: Store, repo: Reference, subject: Digest, entry: Descriptor, rules: Sequence[TrustRule]
) -> ReferrerCheck:
    """Verify referrer ``entry`` of ``subject`` with each of ``rules``; the first that verifies wins,
    else the reason of the check that came closest. Registry errors other than a missing or
    malformed attachment propagate (the page shows the registry's failure, not a false "invalid")."""
    repo = repo.with_tag(None).with_digest(None)
    bundle = (entry.artifact_type or "").startswith(SIGSTORE_BUNDLE_PREFIX)
    closest: Rejected | None = None
    data: bytes | None = None
    for rule in rules:
        try:
            if data is None:
                data = (
                    fetch_bundle(store, repo, subject, entry)
                    if bundle
                    else fetch_envelope(store, repo, subject, entry)
                )
            if bundle:
                verified = verify_bundle_bytes(data, subject, rule, predicate_type=None)
                predicate = verified.predicate_type
                signer = verified.signer
            else:
                if rule.key is None:
                    raise Rejected("a bare DSSE envelope carries no certificate: only a key verifies it", 1)
                predicate, _ = verify_envelope(data, rule.key, subject, None)
                signer = rule.describe()
        except Rejected as rejected:
            if rejected.rank == 0 and data is None:
                return ReferrerCheck(False, shown(rejected.reason))  # unreadable: no rule can do better
            if closest is None or rejected.rank > closest.rank:
                closest = rejected
            continue
        what = "signature" if predicate in (None, COSIGN_SIGN_V1) else "attestation"
        return ReferrerCheck(
            True,
            f"{what} verified with {shown(rule.describe())}",
            rule=rule.describe(),
            signer=shown(signer) if signer else None,
            predicate_type=None if what == "signature" else predicate,
        )
    reason = closest.reason if closest else "no trust rule given"
    return ReferrerCheck(False, shown(reason))
