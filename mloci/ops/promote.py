"""Promotion: move an environment's alias tag to an exact manifest digest, and keep the audit trail.

Nothing is rebuilt or re-serialized: within a repository the alias is the same manifest bytes
under another tag; into another repository or registry the artifact is copied by digest first
(blob mounts where possible). Every promotion writes an immutable *promotion record* into the
registry itself: an OCI artifact whose ``subject`` is the promoted manifest, additionally
tagged ``mloci-promotion-<env>-<time>-<random>`` so that racing promotions can never drop each
other's record (every record has a tag of its own). ``history`` reads those records back from
the registry alone. ``docs/promotion.md`` describes the format and the guarantees.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mloci.buildenv import actor as local_actor
from mloci.buildenv import ci_run_url
from mloci.errors import IntegrityError, MlociError, NotFoundError, RegistryError, UsageError
from mloci.ops.referrers import attach
from mloci.ops.transfer import Copier
from mloci.project import ProjectConfig
from mloci.store import Session, Store, read_small_blob, scoped
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest
from mloci.types.promotion import PromotionRecord
from mloci.types.reference import Reference, is_valid_tag
from mloci.types.semver import is_version_tag
from mloci.types.timestamps import rfc3339

RECORD_TAG_PREFIX = "mloci-promotion-"

# Called with the pinned reference and its manifest descriptor before the alias moves;
# raises PolicyError to refuse. The trust features plug their policy engine in here.
Gate = Callable[[Reference, Descriptor], None]


@dataclass(frozen=True)
class PromotionResult:
    reference: Reference  # repository:alias@digest
    digest: Digest
    environment: str
    previous: Digest | None
    record: Digest | None  # None when nothing changed
    copied: bool

    @property
    def unchanged(self) -> bool:
        return self.record is None

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "environment": self.environment,
            "previous": str(self.previous) if self.previous else None,
            "record": str(self.record) if self.record else None,
            "copied": self.copied,
            "unchanged": self.unchanged,
        }


@dataclass(frozen=True)
class Target:
    """Where an environment lives: repository and alias tag."""

    name: str
    repository: Reference
    alias: str


def environment_target(
    name: str, *, project: ProjectConfig | None, default_repository: Reference | None
) -> Target:
    if project is not None and project.environments:
        env = project.environment(name)
        if env is None:
            known = ", ".join(e.name for e in project.environments)
            raise UsageError(f"unknown environment {name!r}", hint=f"the project defines: {known}")
        return Target(name, env.reference, env.tag)
    if default_repository is None:
        raise UsageError(f"no project configuration defines environment {name!r}; name the repository")
    if not is_valid_tag(name):
        raise UsageError(f"{name!r} cannot be an environment alias (not a valid tag)")
    return Target(name, default_repository.with_tag(None).with_digest(None), name)


def _record_tag(environment: str, moment: datetime) -> str:
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{RECORD_TAG_PREFIX}{environment}-{stamp}-{secrets.token_hex(4)}"[:128]


def _write_record(store: Store, repo: Reference, subject: Descriptor, record: PromotionRecord) -> Digest:
    empty = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    layer = Blob.of_bytes(mediatype.PROMOTION, record.to_json())
    for blob in (empty, layer):
        store.push_blob(repo.repository, blob)
    annotations = {
        ann.PROMOTION_ENVIRONMENT: record.environment,
        ann.PROMOTION_ACTOR: record.actor,
        ann.CREATED: rfc3339(record.timestamp, fraction=True),
    }
    if record.previous:
        annotations[ann.PROMOTION_PREVIOUS] = str(record.previous)
    manifest = Manifest(
        artifact_type=mediatype.PROMOTION,
        config=empty.descriptor,
        layers=[layer.descriptor],
        subject=subject.model_copy(update={"annotations": None, "artifact_type": None}),
        annotations=annotations,
    )
    entry = attach(store, repo, manifest)
    # A tag of its own per record: concurrent promotions cannot overwrite each other's.
    store.push_manifest(
        repo.with_tag(_record_tag(record.environment, record.timestamp)),
        manifest.to_json(),
        mediatype.OCI_MANIFEST,
    )
    return entry.digest


def promote(
    reference: Reference,
    environment: str,
    *,
    project: ProjectConfig | None = None,
    reason: str | None = None,
    session: Session | None = None,
    gate: Gate | None = None,
    policy: Path | None = None,
    rollback_of: Digest | None = None,
    ci_url: str | None = None,
    actor: str | None = None,
) -> PromotionResult:
    """Point ``environment``'s alias at the manifest ``reference`` names, recording who, when and why.

    ``policy`` (else the environment's own policy in ``project``) must pass first; ``gate`` is
    any other check to run instead. ``actor`` is who the record names (default: the user running
    this process, as :func:`mloci.buildenv.actor` finds them); a server acting for a caller passes
    the caller, and a ``session`` holding the caller's credentials — then no CI run of the server's
    own environment is recorded either.
    """
    target = environment_target(environment, project=project, default_repository=reference)
    if gate is None:
        gate = _policy_gate(environment, project, policy, session)
    if is_version_tag(target.alias):
        raise UsageError(
            f"alias {target.alias!r} looks like a version; version tags are immutable and never move"
        )
    scope = scoped(session)
    source_store = scope.session.store(reference)
    target_store = scope.session.store(target.repository)
    try:
        try:
            descriptor = source_store.resolve(reference)
        except NotFoundError:
            raise NotFoundError(f"{reference} does not exist; nothing to promote") from None
        pinned = reference.pinned(descriptor.digest)
        if gate is not None:
            gate(pinned, descriptor)
        dst = target.repository
        copied = dst.name != reference.name
        if copied:
            copier = Copier(
                source_store, reference, target_store, dst, concurrency=scope.session.options.concurrency
            )
            copier.manifest(descriptor.digest)
            copier.referrers(descriptor.digest)
        alias_ref = dst.with_tag(target.alias)
        try:
            previous: Digest | None = target_store.resolve(alias_ref).digest
        except NotFoundError:
            previous = None
        result_ref = alias_ref.pinned(descriptor.digest)
        if previous == descriptor.digest and rollback_of is None:
            return PromotionResult(result_ref, descriptor.digest, environment, previous, None, copied)
        record = PromotionRecord(
            environment=environment,
            repository=dst.name,
            alias=target.alias,
            digest=descriptor.digest,
            previous=previous,
            source=str(pinned),
            actor=actor or local_actor(),
            timestamp=datetime.now(UTC),
            reason=reason,
            ci_run_url=ci_url or (None if actor else ci_run_url()),
            rollback_of=rollback_of,
        )
        # The record goes first: an alias never moves without its audit entry.
        record_digest = _write_record(target_store, dst, descriptor, record)
        _, data = target_store.fetch_manifest(dst.with_digest(descriptor.digest))
        target_store.push_manifest(alias_ref, data, descriptor.media_type)
        return PromotionResult(result_ref, descriptor.digest, environment, previous, record_digest, copied)
    finally:
        scope.close()


def _policy_gate(
    environment: str, project: ProjectConfig | None, policy: Path | None, session: Session | None
) -> Gate | None:
    env = project.environment(environment) if project else None
    path = policy or (Path(env.policy) if env and env.policy else None)
    if path is None:
        return None
    from mloci.ops.policy import gate_from_file  # noqa: PLC0415  (signature checks load cryptography)

    return gate_from_file(path, session)


@dataclass(frozen=True)
class HistoryEntry:
    record: PromotionRecord
    manifest: Digest  # the record artifact's own digest

    def to_json(self) -> dict[str, Any]:
        document = self.record.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {**document, "record": str(self.manifest)}


def read_record(store: Store, repo: Reference, tag: str) -> HistoryEntry | None:
    """The promotion record tagged ``tag`` in ``repo``; None for anything that is not a valid one."""
    try:
        descriptor, data = store.fetch_manifest(repo.with_tag(tag))
        manifest = Manifest.from_json(data)
        if manifest.artifact_type != mediatype.PROMOTION or not manifest.layers:
            return None
        payload = read_small_blob(store, repo.repository, manifest.layers[0])
        record = PromotionRecord.model_validate_json(payload)
    except (ValidationError, IntegrityError, NotFoundError, RegistryError):
        return None  # not a record mloci can read (malformed, or a tag that merely looks like one)
    if manifest.subject is None or manifest.subject.digest != record.digest:
        return None  # a record must bind the digest it describes
    return HistoryEntry(record, descriptor.digest)


@dataclass(frozen=True)
class History:
    """The promotions recorded in one repository, newest first (iterable like a list of entries)."""

    repository: Reference
    environment: str | None
    entries: tuple[HistoryEntry, ...]

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository.name,
            "environment": self.environment,
            "promotions": [e.to_json() for e in self.entries],
        }


def history(
    repository: Reference | None = None,
    environment: str | None = None,
    *,
    project: ProjectConfig | None = None,
    session: Session | None = None,
) -> History:
    """Every promotion recorded in ``repository`` (for one environment), newest first.

    Without ``repository``, the repository of ``environment`` as ``project`` defines it.
    """
    if repository is None:
        if environment is None or project is None or project.environment(environment) is None:
            raise UsageError("name a repository (or an environment defined in mloci.toml / [tool.mloci])")
        repository = environment_target(environment, project=project, default_repository=None).repository
    return History(repository, environment, tuple(_entries(repository, environment, session)))


def _entries(repository: Reference, environment: str | None, session: Session | None) -> list[HistoryEntry]:
    with scoped(session) as active:
        store = active.store(repository)
        repo = repository.with_tag(None).with_digest(None)
        # A repository that does not exist is an error (as for ls and gc), not an empty history.
        tags = store.list_tags(repo.repository)
        prefix = RECORD_TAG_PREFIX + (f"{environment}-" if environment else "")
        wanted = [t for t in tags if t.startswith(prefix)]
        with ThreadPoolExecutor(max_workers=max(active.options.concurrency, 1)) as pool:
            entries = [e for e in pool.map(lambda t: read_record(store, repo, t), wanted) if e is not None]
    if environment:
        entries = [e for e in entries if e.record.environment == environment]
    return sorted(entries, key=lambda e: e.record.timestamp, reverse=True)


def rollback(
    repository: Reference | None,
    environment: str,
    *,
    project: ProjectConfig | None = None,
    reason: str | None = None,
    session: Session | None = None,
    actor: str | None = None,
) -> PromotionResult:
    """Point the alias back at what it named before its current digest was promoted (``actor`` and
    ``session`` as for :func:`promote`)."""
    target = environment_target(environment, project=project, default_repository=repository)
    with scoped(session) as active:
        store = active.store(target.repository)
        try:
            current = store.resolve(target.repository.with_tag(target.alias)).digest
        except NotFoundError:
            raise NotFoundError(
                f"{target.repository.name}:{target.alias} does not exist; nothing to roll back"
            ) from None
        entries = _entries(target.repository, environment, active)
        latest = next((e.record for e in entries if e.record.digest == current), None)
        if latest is None:
            raise MlociError(
                f"no promotion record explains {target.alias} = {current}; cannot tell what came before"
            )
        if latest.previous is None:
            raise MlociError(
                f"{current} was the first promotion to {environment}; there is nothing to roll back to"
            )
        return promote(
            target.repository.with_digest(latest.previous),
            environment,
            project=project,
            reason=reason or f"rollback of {current}",
            session=active,
            rollback_of=current,
            actor=actor,
        )
