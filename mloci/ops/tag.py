"""Retag: the same manifest bytes under more tags of the same repository; no blob moves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mloci.errors import ConflictError, NotAManifestError, NotFoundError, UsageError
from mloci.store import Session, scoped
from mloci.types.digest import Digest
from mloci.types.reference import Reference, is_valid_tag
from mloci.types.semver import is_version_tag


@dataclass(frozen=True)
class TagResult:
    reference: Reference
    digest: Digest
    tags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"reference": str(self.reference), "digest": str(self.digest), "tags": list(self.tags)}


def tag(
    reference: Reference, tags: Sequence[str], *, session: Session | None = None, force: bool = False
) -> TagResult:
    """Point each of ``tags`` at the manifest ``reference`` names. Version tags never move (unless ``force``)."""
    for name in tags:
        if not is_valid_tag(name):
            raise UsageError(f"invalid tag {name!r}")
    with scoped(session) as active:
        store = active.store(reference)
        descriptor, data = store.fetch_manifest(reference)
        for name in tags:
            target = reference.with_digest(None).with_tag(name)
            try:
                existing = store.resolve(target).digest
            except (NotFoundError, NotAManifestError):
                existing = None  # free, or a broken tag (naming a blob) that may be repaired
            if existing not in (None, descriptor.digest) and is_version_tag(name) and not force:
                raise ConflictError(
                    f"{target} already names {existing}; version tags are immutable",
                    hint="use an environment alias (mloci promote), or --force",
                )
        for name in tags:
            store.push_manifest(reference.with_digest(None).with_tag(name), data, descriptor.media_type)
        return TagResult(reference.pinned(descriptor.digest), descriptor.digest, tuple(tags))
