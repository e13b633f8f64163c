"""Retention: delete old versions no environment alias holds, with everything attached to them.

Registries reclaim blob space with their own garbage collection (distribution: ``registry
garbage-collect``); the local store's unreferenced blobs are removed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mloci.errors import NotFoundError, UsageError
from mloci.ops.listing import ModelVersion, list_versions
from mloci.ops.referrers import COSIGN_SUFFIXES, fallback_tag, list_referrers
from mloci.store import CollectsGarbage, Session, Store, scoped
from mloci.store.layout import GC_GRACE_SECONDS
from mloci.types.digest import Digest
from mloci.types.reference import Reference


@dataclass
class GcPlan:
    repository: str
    keep: list[ModelVersion] = field(default_factory=list)
    delete: list[ModelVersion] = field(default_factory=list)
    attachments: dict[str, list[str]] = field(default_factory=dict)  # deleted digest -> its referrers
    executed: bool = False
    blobs_removed: int = 0
    leftovers_removed: int = 0  # temporary files of killed processes swept from the local store
    broken_tags: list[str] = field(default_factory=list)  # tags that name no manifest: skipped, named

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "dryRun": not self.executed,
            "keep": [v.to_json() for v in self.keep],
            "delete": [
                {**v.to_json(), "referrers": self.attachments.get(str(v.digest), [])} for v in self.delete
            ],
            "blobsRemoved": self.blobs_removed,
            "leftoversRemoved": self.leftovers_removed,
            "brokenTags": self.broken_tags,
        }


def _attachments(store: Store, repo: Reference, subject: Digest) -> list[Digest]:
    """Everything that refers to ``subject``, depth first (signatures of an SBOM before the SBOM)."""
    found: list[Digest] = []
    for entry in list_referrers(store, repo, subject):
        found.extend(_attachments(store, repo, entry.digest))
        found.append(entry.digest)
    for suffix in (*COSIGN_SUFFIXES, ""):
        tag = fallback_tag(subject) + suffix
        try:
            found.append(store.resolve(repo.with_tag(tag)).digest)
        except NotFoundError:
            continue
    return list(dict.fromkeys(found))


def plan_gc(repository: Reference, *, keep_last: int, session: Session | None = None) -> GcPlan:
    """Which versions go: all but the ``keep_last`` newest, never one an alias (environment) names."""
    if keep_last < 0:
        raise UsageError("--keep-last must be 0 or more")
    if repository.tag or repository.digest:
        # Naming one version and deleting the others is a trap: gc takes a repository only.
        raise UsageError(
            f"gc takes a repository, not the version {repository}",
            hint=f"run 'mloci gc {repository.with_tag(None).with_digest(None)} …'",
        )
    broken: list[str] = []
    versions = [v for v in list_versions(repository, session=session, broken=broken) if v.tags]
    plan = GcPlan(repository.with_tag(None).with_digest(None).name, broken_tags=broken)
    for position, version in enumerate(versions):
        (plan.keep if position < keep_last or version.aliases else plan.delete).append(version)
    return plan


def gc(
    repository: Reference,
    *,
    keep_last: int,
    dry_run: bool = True,
    session: Session | None = None,
    grace_seconds: float = GC_GRACE_SECONDS,
) -> GcPlan:
    with scoped(session) as active:
        plan = plan_gc(repository, keep_last=keep_last, session=active)
        store = active.store(repository)
        repo = repository.with_tag(None).with_digest(None)
        for version in plan.delete:
            plan.attachments[str(version.digest)] = [
                str(d) for d in _attachments(store, repo, version.digest)
            ]
        if dry_run:
            return plan
        for version in plan.delete:
            # The version first: a registry refusing deletes fails here, before anything is gone.
            store.delete_manifest(repo.repository, version.digest)
            for digest in plan.attachments[str(version.digest)]:
                try:
                    store.delete_manifest(repo.repository, Digest.parse(digest))
                except NotFoundError:
                    continue
        plan.executed = True
        if isinstance(store, CollectsGarbage):
            # Also when no version went: a killed push leaves temporary files and unlisted blobs.
            plan.leftovers_removed = store.sweep_leftovers(grace_seconds=grace_seconds)
            plan.blobs_removed = store.collect_garbage(grace_seconds=grace_seconds)
        return plan
