"""Every call the catalog makes into mloci's operations, in one place.

The catalog reads through a caching :class:`~mloci.store.Store`; the operations below are the
store-level pieces of ``ls``, ``inspect``, ``history``, ``discover``, ``diff`` and the package
index. When the typed Python API (``mloci.Client``) lands, this is the one module to re-point.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloci.errors import IntegrityError, MlociError, UnsupportedError
from mloci.ops import diff as _diff
from mloci.ops import inspection as _inspection
from mloci.ops import promote as _promote
from mloci.ops import referrers as _referrers
from mloci.ops import wheel as _wheel
from mloci.ops.attach import COSIGN_TAGS
from mloci.ops.listing import is_internal_tag
from mloci.ops.promote import RECORD_TAG_PREFIX, HistoryEntry, PromotionResult
from mloci.ops.referrers import fallback_tag
from mloci.python.artifact import ARTIFACT_TYPE as PYTHON_PACKAGE_TYPE
from mloci.python.artifact import Release
from mloci.store import ListsRepositories, Session, Store, StoreOptions, read_small_blob
from mloci.store.registry.auth import Credentials
from mloci.types import kinds as _kinds
from mloci.types import mediatype
from mloci.types.annotations import MODEL_DIGEST
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.types.reference import Reference

if TYPE_CHECKING:
    from mloci.ops.policy import PolicyReport
    from mloci.ops.trustcheck import ReferrerCheck
    from mloci.trust.verifier import TrustRule

__all__ = [
    "COSIGN_TAGS",
    "MODEL_DIGEST",
    "PROMOTION_TYPE",
    "PYTHON_PACKAGE_TYPE",
    "RECORD_TAG_PREFIX",
    "HistoryEntry",
    "PromotionResult",
    "Release",
    "check_policy",
    "compare",
    "describe_layer",
    "fallback_tag",
    "is_internal_tag",
    "kind_of",
    "list_referrers",
    "list_releases",
    "promote",
    "read_record",
    "repositories",
    "rollback",
    "small_json",
]


PROMOTION_TYPE = mediatype.PROMOTION


def repositories(store: Store) -> list[str]:
    """Every repository the store lists (the registry's catalog API; the local layout's index).

    A registry that refuses its catalog lists nothing; one that cannot be reached is an error (an
    empty list would look like a registry without models).
    """
    inner = getattr(store, "inner", store)
    if not isinstance(inner, ListsRepositories):
        return []
    try:
        return inner.repositories()
    except UnsupportedError:
        return []


def kind_of(artifact_type: str | None, annotations: Mapping[str, str] | None = None) -> str | None:
    """What an attachment is ('sbom: CycloneDX', 'test results'…), or None when unknown.

    ``annotations`` tell a sigstore bundle attestation from a bundle signature.
    """
    kind = _kinds.kind_of(artifact_type, annotations)
    return kind.label if kind else None


def read_record(store: Store, repo: Reference, tag: str) -> HistoryEntry | None:
    return _promote.read_record(store, repo, tag)


def list_referrers(store: Store, repo: Reference, subject: Digest) -> list[Descriptor]:
    return _referrers.list_referrers(store, repo, subject)


def describe_layer(layer: Descriptor) -> dict[str, Any]:
    return _inspection.describe_layer(layer).to_json()


def small_json(store: Store, repository: str, descriptor: Descriptor) -> dict[str, Any] | None:
    """A small JSON document (a bundle manifest, a report) read whole, or None when it is no object."""
    data = read_small_blob(store, repository, descriptor)
    try:
        value = json.loads(data)
    except ValueError:
        raise IntegrityError(
            f"blob {descriptor.digest} ({descriptor.media_type}) is not valid JSON"
        ) from None
    return value if isinstance(value, dict) else None


def compare(store: Store, left: Reference, right: Reference) -> dict[str, Any]:
    """``mloci diff`` of two pinned artifacts read through ``store``, as its JSON document."""
    a = _inspection.read_artifact(store, left)
    b = _inspection.read_artifact(store, right)
    return _diff.compare(a, b).to_json()


def list_releases(store: Store, repository: Reference) -> list[Release]:
    return _wheel.list_releases(store, repository)


Gate = _promote.Gate


def verify_signature(
    reference: Reference,
    key: Path | None,
    options: StoreOptions,
    *,
    identity: tuple[str, str] | None = None,
    trusted_root: Path | None = None,
    credentials: Credentials | None = None,
) -> tuple[bool, str]:
    """Whether a cosign signature on ``reference`` verifies with the public key ``key`` (or the keyless
    ``identity``: certificate identity and issuer), and why (not); read with ``credentials`` (None: the
    server's)."""
    from mloci.ops import sign as _sign  # noqa: PLC0415  (cryptography loads only when keys are given)
    from mloci.trust.keyless import IdentityRule  # noqa: PLC0415

    try:
        with Session(options, credentials=credentials) as session:
            result = _sign.verify(
                reference,
                key,
                identity=IdentityRule(*identity) if identity else None,
                trusted_root=trusted_root,
                session=session,
            )
    except MlociError as exc:
        return False, str(exc)
    return True, f"{len(result.signatures)} of {result.checked} signatures verify"


def trust_rules(
    keys: tuple[Path, ...], identity: str | None, issuer: str | None, trusted_root: Path | None
) -> list[TrustRule]:
    """The server's trust rules: one per ``--verify-key``, and the keyless identity when given."""
    from mloci.trust.keyless import IdentityRule  # noqa: PLC0415
    from mloci.trust.verifier import TrustRule  # noqa: PLC0415

    rules = [TrustRule.of(key, trusted_root=trusted_root) for key in keys]
    if identity is not None or issuer is not None:
        rules.append(TrustRule.of(identity=IdentityRule(identity, issuer), trusted_root=trusted_root))
    return rules


def check_referrer(
    store: Store, repo: Reference, subject: Digest, entry: Descriptor, rules: list[TrustRule]
) -> ReferrerCheck:
    """One signature or attestation referrer checked against the server's trust rules."""
    from mloci.ops import trustcheck  # noqa: PLC0415  (cryptography loads only when rules are given)

    return trustcheck.check_referrer(store, repo, subject, entry, rules)


def checkable(entry: Descriptor) -> bool:
    from mloci.ops import trustcheck  # noqa: PLC0415

    return trustcheck.checkable(entry)


__all__ += [
    "Descriptor",
    "Gate",
    "MlociError",
    "Reference",
    "verify_signature",
]


# -- writes: the promotions of ``mloci promote``/``rollback``, in a session with the caller's credentials


promote = _promote.promote
rollback = _promote.rollback


def check_policy(path: Path, reference: Reference, session: Session) -> PolicyReport:
    """Every rule of the policy file at ``path`` evaluated against the artifact ``reference`` pins,
    reading through ``session`` (the caller's)."""
    from mloci.ops import policy as _policy  # noqa: PLC0415  (jsonschema loads only for promotions)

    return _policy.check(path, reference, session=session)
