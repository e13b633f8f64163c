"""Referrers: artifacts that point at another one through ``subject`` (OCI 1.1).

Registries with the referrers API index them themselves. For the others (distribution 2.8,
the local OCI layout) mloci maintains the OCI *referrers tag schema*: an image index tagged
``<alg>-<hex>`` of the subject digest, listing every referrer with its ``artifactType`` and
``annotations`` (both kept, unlike cosign's fallback).

Registries without conditional writes cannot make that index update atomic. A writer
therefore re-reads after writing, twice with a pause, and merges again when its entry was
overwritten by a concurrent writer; ``docs/promotion.md`` states what is guaranteed.
"""

from __future__ import annotations

import random
import time

from mloci.errors import NotFoundError
from mloci.ops._retry import until_kept
from mloci.store import Store
from mloci.types import mediatype
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Index, Manifest
from mloci.types.reference import Reference

# cosign keeps signatures, attestations and SBOMs under these tag suffixes, not as referrers.
COSIGN_SUFFIXES = (".sig", ".att", ".sbom")

# Pauses before each re-read of the fallback index (seconds); the writer merges again if needed.
_VERIFY_PAUSES = (0.05, 0.25)


def fallback_tag(digest: Digest) -> str:
    """The referrers tag schema tag for ``digest``: ``sha256-<hex>``."""
    return f"{digest.algorithm}-{digest.encoded}"[:128]


def is_fallback_tag(tag: str) -> bool:
    algorithm, sep, encoded = tag.partition("-")
    return bool(sep) and algorithm in ("sha256", "sha512") and len(encoded) in (64, 128)


def _fallback_index(store: Store, repo: Reference, subject: Digest) -> list[Descriptor]:
    try:
        _, data = store.fetch_manifest(repo.with_digest(None).with_tag(fallback_tag(subject)))
    except NotFoundError:
        return []
    return list(Index.from_json(data).manifests)


def list_referrers(
    store: Store, repo: Reference, subject: Digest, artifact_type: str | None = None
) -> list[Descriptor]:
    """Every manifest whose subject is ``subject`` (optionally of one artifact type)."""
    found = store.referrers(repo.repository, subject, artifact_type)
    if found is None:
        found = _fallback_index(store, repo, subject)
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
    return found


def attach(store: Store, repo: Reference, manifest: Manifest) -> Descriptor:
    """Push ``manifest`` (which has a ``subject``) by digest and make it discoverable from the subject."""
    if manifest.subject is None:
        raise ValueError("a referrer needs a subject")
    data = manifest.to_json()
    pushed = store.push_manifest(
        repo.with_tag(None).with_digest(Digest.of(data)), data, manifest.media_type or mediatype.OCI_MANIFEST
    )
    entry = pushed.model_copy(
        update={"artifact_type": manifest.kind, "annotations": dict(manifest.annotations or {}) or None}
    )
    if store.referrers(repo.repository, manifest.subject.digest) is not None:
        return entry  # the registry's referrers API indexes it
    _add_to_fallback(store, repo, manifest.subject.digest, entry)
    return entry


def register(store: Store, repo: Reference, subject: Digest, entry: Descriptor) -> None:
    """Make an already pushed referrer discoverable where the store has no referrers API."""
    if store.referrers(repo.repository, subject) is None:
        _add_to_fallback(store, repo, subject, entry)


def _add_to_fallback(store: Store, repo: Reference, subject: Digest, entry: Descriptor) -> None:
    tag_ref = repo.with_digest(None).with_tag(fallback_tag(subject))

    def attempt() -> bool | None:
        current = _fallback_index(store, repo, subject)
        if all(d.digest != entry.digest for d in current):
            index = Index(manifests=[*current, entry])
            store.push_manifest(tag_ref, index.to_json(), mediatype.OCI_INDEX)
        # Another writer may have replaced the index with one lacking our entry: look again.
        for pause in _VERIFY_PAUSES:
            time.sleep(pause * random.uniform(0.5, 1.5))  # noqa: S311
            if all(d.digest != entry.digest for d in _fallback_index(store, repo, subject)):
                return None
        return True

    until_kept(attempt, what=f"the referrers index {tag_ref}", hint="attach again")


def detach(store: Store, repo: Reference, subject: Digest, referrer: Digest) -> None:
    """Drop ``referrer`` from the subject's fallback index (after the referrer itself was deleted)."""
    current = _fallback_index(store, repo, subject)
    remaining = [d for d in current if d.digest != referrer]
    if len(remaining) == len(current):
        return
    tag_ref = repo.with_digest(None).with_tag(fallback_tag(subject))
    store.push_manifest(tag_ref, Index(manifests=remaining).to_json(), mediatype.OCI_INDEX)
