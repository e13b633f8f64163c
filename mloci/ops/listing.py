"""``ls``: the versions in a repository with what identifies them, and which environments hold them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mloci.errors import IntegrityError, NotAManifestError, NotFoundError, RegistryError
from mloci.ops.promote import RECORD_TAG_PREFIX
from mloci.ops.referrers import COSIGN_SUFFIXES, is_fallback_tag
from mloci.store import Session, Store, scoped
from mloci.types import annotations as ann
from mloci.types import jsontext, mediatype
from mloci.types.digest import Digest
from mloci.types.manifest import Index, Manifest
from mloci.types.reference import Reference
from mloci.types.semver import is_version_tag, sort_key


def is_internal_tag(tag: str) -> bool:
    """Tags that index attachments (referrers fallback, cosign, promotion records), not versions."""
    return is_fallback_tag(tag) or tag.startswith(RECORD_TAG_PREFIX) or tag.endswith(COSIGN_SUFFIXES)


@dataclass
class ModelVersion:
    """One artifact of a repository with every tag naming it: versions, aliases, recorded metrics."""

    digest: Digest
    tags: list[str] = field(default_factory=list)  # immutable version tags
    aliases: list[str] = field(default_factory=list)  # moving tags: environments, latest…
    version: str | None = None
    revision: str | None = None
    created: str | None = None
    artifact_type: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": str(self.digest),
            "version": self.version,
            "tags": self.tags,
            "aliases": self.aliases,
            "revision": self.revision,
            "created": self.created,
            "artifactType": self.artifact_type,
            "metrics": self.metrics,
        }


def _describe(store: Store, repo: Reference, version: ModelVersion) -> None:
    try:
        descriptor, data = store.fetch_manifest(repo.with_digest(version.digest))
    except (NotFoundError, IntegrityError, RegistryError):
        return
    if descriptor.media_type in mediatype.INDEX_TYPES:
        version.artifact_type = Index.from_json(data).artifact_type or descriptor.media_type
        return
    manifest = Manifest.from_json(data)
    version.artifact_type = manifest.kind
    version.version = manifest.annotation(ann.VERSION)
    version.revision = manifest.annotation(ann.REVISION)
    created = manifest.annotation(ann.CREATED)
    # Reproducible packs without SOURCE_DATE_EPOCH or train_time say 1970: that means "unknown".
    version.created = None if created and created.startswith("1970-01-01T00:00:00") else created
    raw = manifest.annotation(ann.METRICS)
    if raw:
        try:
            parsed = jsontext.loads(raw)
        except ValueError:
            parsed = {}
        if isinstance(parsed, dict):
            version.metrics = {
                str(k): float(v)
                for k, v in parsed.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }


def list_versions(
    repository: Reference, *, session: Session | None = None, broken: list[str] | None = None
) -> list[ModelVersion]:
    """Every artifact a tag names in ``repository``, newest version first.

    A tag that names no manifest (a blob tagged by an older mloci) is skipped; when ``broken``
    is given, a line naming it is appended there for the caller to show.
    """
    with scoped(session) as active:
        store = active.store(repository)
        repo = repository.with_tag(None).with_digest(None)

        def resolve(tag: str) -> Digest | NotAManifestError:
            try:
                return store.resolve(repo.with_tag(tag)).digest
            except NotAManifestError as exc:
                return exc

        tags = [t for t in store.list_tags(repo.repository) if not is_internal_tag(t)]
        with ThreadPoolExecutor(max_workers=max(active.options.concurrency, 1)) as pool:
            digests = list(pool.map(resolve, tags))
            versions: dict[Digest, ModelVersion] = {}
            for name, digest in zip(tags, digests, strict=True):
                if isinstance(digest, NotAManifestError):
                    if broken is not None:
                        broken.append(f"skipped tag {repo.name}:{name}: {digest.message}")
                    continue
                entry = versions.setdefault(digest, ModelVersion(digest))
                (entry.tags if is_version_tag(name) else entry.aliases).append(name)
            list(pool.map(lambda v: _describe(store, repo, v), versions.values()))
    return sorted(versions.values(), key=lambda v: (sort_key(v.version or ""), v.created or ""), reverse=True)
