"""Every call the catalog makes into mloci's operations, in one place.

The catalog reads through a caching :class:`~mloci.store.Store`; the operations below are the
store-level pieces of ``ls``, ``inspect``, ``history``, ``discover``, ``diff`` and the package
index. When the typed Python API (``mloci.Client``) lands, this is the one module to re-point.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloci.errors import IntegrityError, MlociError, NotFoundError, UnsupportedError, UsageError
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
from mloci.types import kinds as _kinds
from mloci.types import mediatype
from mloci.types.annotations import MODEL_DIGEST
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.types.promotion import PromotionRecord
from mloci.types.reference import Reference
from mloci.types.semver import is_version_tag

if TYPE_CHECKING:
    from mloci.ops.policy import PolicyReport

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
    "promote_in",
    "read_record",
    "repositories",
    "rollback_in",
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
    return _promote._read_record(store, repo, tag)


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
    result = _diff.Diff(str(a.reference), str(b.reference), a.digest == b.digest)
    bundle_a = a.bundle.to_document() if a.bundle else {}
    bundle_b = b.bundle.to_document() if b.bundle else {}
    keys = (set(bundle_a) | set(bundle_b)) - _diff._NOT_METADATA
    result.metadata = (
        dict(_diff._changed(bundle_a, bundle_b, keys))
        if keys
        else dict(_diff._changed(a.annotations, b.annotations))
    )
    result.metrics = _diff._changed(a.metrics, b.metrics)
    result.dependencies = _diff._changed(_diff._requirements(a), _diff._requirements(b))
    files_a = {f.path or str(f.digest): str(f.digest) for f in a.files}
    files_b = {f.path or str(f.digest): str(f.digest) for f in b.files}
    result.files = _diff._changed(files_a, files_b)
    result.unchanged_files = sum(1 for p, d in files_a.items() if files_b.get(p) == d)
    return result.to_json()


def list_releases(store: Store, repository: Reference) -> list[Release]:
    return _wheel.list_releases(store, repository)


Gate = _promote.Gate


def verify_signature(reference: Reference, key: Path, options: StoreOptions) -> tuple[bool, str]:
    """Whether a cosign signature on ``reference`` verifies with the public key ``key``, and why (not)."""
    from mloci.ops import sign as _sign  # noqa: PLC0415  (cryptography loads only when keys are given)

    try:
        with Session(options) as session:
            result = _sign.verify(reference, key, session=session)
    except MlociError as exc:
        return False, str(exc)
    return True, f"{len(result.signatures)} of {result.checked} signatures verify"


def local_actor() -> str:
    """Who writes to the local store: the user running the server ($MLOCI_ACTOR, CI user, user@host)."""
    from mloci.buildenv import actor  # noqa: PLC0415

    return actor()


__all__ += [
    "Descriptor",
    "Gate",
    "MlociError",
    "Reference",
    "local_actor",
    "verify_signature",
]


# -- writes: promotions with a store that holds the caller's credentials ----------------------


def check_policy(path: Path, reference: Reference, options: StoreOptions) -> PolicyReport:
    """Every rule of the policy file at ``path`` evaluated against the artifact ``reference`` pins."""
    from mloci.ops import policy as _policy  # noqa: PLC0415  (jsonschema loads only for promotions)

    with Session(options) as session:
        return _policy.check(path, reference, session=session)


def promote_in(
    store: Store,
    reference: Reference,
    environment: str,
    *,
    actor: str,
    reason: str | None,
    rollback_of: Digest | None = None,
    gate: Callable[[Reference, Descriptor], None] | None = None,
) -> PromotionResult:
    """``mloci promote`` within one repository, through ``store`` (and so with its credentials).

    As :func:`mloci.ops.promote.promote`: the record is written before the alias moves.
    """
    repository = reference.with_tag(None).with_digest(None)
    target = _promote.environment_target(environment, project=None, default_repository=repository)
    if is_version_tag(target.alias):
        raise UsageError(f"{environment!r} looks like a version; version tags are immutable and never move")
    try:
        descriptor = store.resolve(reference)
    except NotFoundError:
        raise NotFoundError(f"{reference} does not exist; nothing to promote") from None
    pinned = reference.pinned(descriptor.digest)
    if gate is not None:
        gate(pinned, descriptor)
    alias_ref = repository.with_tag(target.alias)
    try:
        previous: Digest | None = store.resolve(alias_ref).digest
    except NotFoundError:
        previous = None
    result_ref = alias_ref.pinned(descriptor.digest)
    if previous == descriptor.digest and rollback_of is None:
        return PromotionResult(result_ref, descriptor.digest, environment, previous, None, False)
    record = PromotionRecord(
        environment=environment,
        repository=repository.name,
        alias=target.alias,
        digest=descriptor.digest,
        previous=previous,
        source=str(pinned),
        actor=actor,
        timestamp=datetime.now(UTC),
        reason=reason,
        rollback_of=rollback_of,
    )
    record_digest = _promote._write_record(store, repository, descriptor, record)
    _, data = store.fetch_manifest(repository.with_digest(descriptor.digest))
    store.push_manifest(alias_ref, data, descriptor.media_type)
    return PromotionResult(result_ref, descriptor.digest, environment, previous, record_digest, False)


def rollback_in(
    store: Store, repository: Reference, environment: str, *, actor: str, reason: str | None
) -> PromotionResult:
    """``mloci rollback`` within one repository, through ``store``."""
    repository = repository.with_tag(None).with_digest(None)
    target = _promote.environment_target(environment, project=None, default_repository=repository)
    try:
        current = store.resolve(repository.with_tag(target.alias)).digest
    except NotFoundError:
        raise NotFoundError(
            f"{repository.name}:{target.alias} does not exist; nothing to roll back"
        ) from None
    prefix = f"{RECORD_TAG_PREFIX}{environment}-"
    entries = [
        e
        for e in (
            read_record(store, repository, t)
            for t in store.list_tags(repository.repository)
            if t.startswith(prefix)
        )
        if e is not None and e.record.environment == environment
    ]
    entries.sort(key=lambda e: e.record.timestamp, reverse=True)
    latest = next((e.record for e in entries if e.record.digest == current), None)
    if latest is None:
        raise MlociError(
            f"no promotion record explains {target.alias} = {current}; cannot tell what came before"
        )
    if latest.previous is None:
        raise MlociError(
            f"{current} was the first promotion to {environment}; there is nothing to roll back to"
        )
    return promote_in(
        store,
        repository.with_digest(latest.previous),
        environment,
        actor=actor,
        reason=reason or f"rollback of {current}",
        rollback_of=current,
    )
