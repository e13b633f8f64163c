"""Every call the catalog makes into mloci's operations, in one place.

The catalog reads through a caching :class:`~mloci.store.Store`; the operations below are the
store-level pieces of ``ls``, ``inspect``, ``history``, ``discover``, ``diff`` and the package
index. When the typed Python API (``mloci.Client``) lands, this is the one module to re-point.
"""

from __future__ import annotations

from typing import Any

from mloci.errors import MlociError, UnavailableError
from mloci.ops import diff as _diff
from mloci.ops import inspection as _inspection
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

__all__ = [
    "COSIGN_TAGS",
    "MODEL_DIGEST",
    "PROMOTION_TYPE",
    "PYTHON_PACKAGE_TYPE",
    "RECORD_TAG_PREFIX",
    "HistoryEntry",
    "PromotionResult",
    "Release",
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


def promote(
    reference: Reference, environment: str, *, reason: str | None, options: StoreOptions
) -> PromotionResult:
    return _promote.promote(reference, environment, reason=reason, options=options)


def rollback(
    repository: Reference, environment: str, *, reason: str | None, options: StoreOptions
) -> PromotionResult:
    return _promote.rollback(repository, environment, reason=reason, options=options)


InspectResult = _inspection.InspectResult

__all__ += ["InspectResult", "MlociError", "inspect_result"]
