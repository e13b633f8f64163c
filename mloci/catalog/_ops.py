"""Every call the catalog makes into mloci's operations, in one place.

The catalog reads through a caching :class:`~mloci.store.Store`; the operations below are the
store-level pieces of ``ls``, ``inspect``, ``history``, ``discover``, ``diff`` and the package
index. When the typed Python API (``mloci.Client``) lands, this is the one module to re-point.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mloci.errors import MlociError, NotFoundError, UnavailableError, UsageError
from mloci.ops import diff as _diff
from mloci.ops import inspection as _inspection
from mloci.ops import policy as _policy
from mloci.ops import promote as _promote
from mloci.ops import referrers as _referrers
from mloci.ops import wheel as _wheel
from mloci.ops.attach import COSIGN_TAGS, kind_of
from mloci.ops.image import MODEL_DIGEST
from mloci.ops.listing import is_internal_tag
from mloci.ops.promote import PROMOTION_TYPE, RECORD_TAG_PREFIX, HistoryEntry, PromotionResult
from mloci.ops.referrers import fallback_tag
from mloci.python.artifact import ARTIFACT_TYPE as PYTHON_PACKAGE_TYPE
from mloci.python.artifact import Release
from mloci.store import LayoutStore, RegistryStore, Store, StoreOptions
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.types.reference import Reference
from mloci.types.semver import is_version_tag

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


def repositories(store: Store) -> list[str]:
    """Every repository the store lists (the registry's catalog API; the local layout's index)."""
    inner = getattr(store, "inner", store)
    if isinstance(inner, LayoutStore):
        return inner.repositories()
    if isinstance(inner, RegistryStore):
        return _catalog(inner)
    return []


def _catalog(store: RegistryStore) -> list[str]:
    """The registry's ``/v2/_catalog``, every page. A registry that refuses it lists nothing; one
    that cannot be reached is an error (an empty catalog would look like a registry without models)."""
    repositories: list[str] = []
    path: str | None = "/v2/_catalog?n=1000"
    try:
        while path:
            response = store.transport.request("GET", path, scope="registry:catalog:*")
            try:
                document = response.json()
            except ValueError:
                return repositories
            repositories.extend(str(r) for r in (document.get("repositories") or []))
            link = response.headers.get("Link", "")
            path = link.split(";")[0].strip().strip("<>") if 'rel="next"' in link else None
    except UnavailableError:
        raise
    except MlociError:
        return repositories
    return repositories


def read_record(store: Store, repo: Reference, tag: str) -> HistoryEntry | None:
    return _promote._read_record(store, repo, tag)


def list_referrers(store: Store, repo: Reference, subject: Digest) -> list[Descriptor]:
    return _referrers.list_referrers(store, repo, subject)


def describe_layer(layer: Descriptor) -> dict[str, Any]:
    return _inspection._describe_layer(layer)


def small_json(store: Store, repository: str, descriptor: Descriptor) -> dict[str, Any] | None:
    return _inspection._small_json(store, repository, descriptor)


def compare(left: _inspection.InspectResult, right: _inspection.InspectResult) -> dict[str, Any]:
    """``mloci diff`` of two already inspected artifacts, as its JSON document."""
    result = _diff.Diff(str(left.reference), str(right.reference), left.digest == right.digest)
    bundle_a, bundle_b = left.bundle or {}, right.bundle or {}
    keys = (set(bundle_a) | set(bundle_b)) - _diff._NOT_METADATA
    result.metadata = (
        _diff._changed(bundle_a, bundle_b, keys)
        if keys
        else _diff._changed(left.annotations, right.annotations)
    )
    result.metrics = _diff._changed(left.metrics, right.metrics)
    result.dependencies = _diff._changed(_diff._requirements(left), _diff._requirements(right))
    files_a = {f["path"]: f["digest"] for f in left.files}
    files_b = {f["path"]: f["digest"] for f in right.files}
    result.files = _diff._changed(files_a, files_b)
    result.unchanged_files = sum(1 for p, d in files_a.items() if files_b.get(p) == d)
    return result.to_json()


def inspect_result(
    reference: Reference,
    digest: Digest,
    media_type: str,
    manifest: dict[str, Any],
    bundle: dict[str, Any] | None,
    files: list[dict[str, Any]],
) -> _inspection.InspectResult:
    return _inspection.InspectResult(reference, digest, media_type, manifest, None, bundle, files)


def list_releases(store: Store, repository: Reference) -> list[Release]:
    return _wheel.list_releases(store, repository)


InspectResult = _inspection.InspectResult
Gate = _promote.Gate


def verify_signature(reference: Reference, key: Path, options: StoreOptions) -> tuple[bool, str]:
    """Whether a cosign signature on ``reference`` verifies with the public key ``key``, and why (not)."""
    from mloci.ops import sign as _sign  # noqa: PLC0415  (cryptography loads only when keys are given)

    try:
        result = _sign.verify(reference, key, options=options)
    except MlociError as exc:
        return False, str(exc)
    return True, f"{len(result.signatures)} of {result.checked} signatures verify"


def local_actor() -> str:
    """Who writes to the local store: the user running the server ($MLOCI_ACTOR, CI user, user@host)."""
    return _promote.actor()


__all__ += [
    "Descriptor",
    "Gate",
    "InspectResult",
    "MlociError",
    "Reference",
    "inspect_result",
    "local_actor",
    "verify_signature",
]


# -- writes: promotions with a store that holds the caller's credentials ----------------------


def check_policy(path: Path, reference: Reference, options: StoreOptions) -> _policy.PolicyReport:
    """Every rule of the policy file at ``path`` evaluated against the artifact ``reference`` pins."""
    return _policy.check(path, reference, options=options)


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
    record = _promote.PromotionRecord(
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
