"""Reserving Python project names in a registry namespace, against dependency confusion.

A reservation is a small artifact in the project's own repository (``<namespace>/<normalized
name>``), tagged :data:`RESERVED_TAG`. The package index treats every repository under its
namespace as private: such a name is served only from the registry, never from an upstream index,
whether it has releases or not. Because the reservation lives in the registry, every index server
and replica in front of it agrees. ``reserved`` is no version tag, so the index ignores it as a
release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from mloci.errors import NotFoundError, UsageError
from mloci.ops.push import upload_blobs
from mloci.ops.wheel import project_repository
from mloci.python.artifact import EMPTY_CONFIG
from mloci.python.filenames import is_project_name, normalize_name
from mloci.store import Session, scoped
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.digest import Digest
from mloci.types.manifest import Manifest
from mloci.types.reference import Reference

RESERVATION_TYPE: Final = "application/vnd.mloci.python.reservation.v1+json"
RESERVED_TAG: Final = "reserved"


@dataclass(frozen=True)
class ReserveResult:
    project: str  # normalized
    reference: Reference
    created: bool  # False: the name was already reserved

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "reference": str(self.reference), "created": self.created}


def reservation_manifest(project: str) -> Manifest:
    """The reservation of normalized ``project``: deterministic, so reserving twice writes nothing."""
    return Manifest(
        artifact_type=RESERVATION_TYPE,
        config=EMPTY_CONFIG.descriptor,
        layers=[EMPTY_CONFIG.descriptor],  # the image spec's advice for an artifact without content
        annotations={ann.TITLE: project},
    )


def reserve(namespace: str, names: Sequence[str], *, session: Session | None = None) -> list[ReserveResult]:
    """Reserve every project name in ``names`` under ``namespace`` (``registry/path``)."""
    if not names:
        raise UsageError("name at least one project to reserve")
    for name in names:
        if not is_project_name(name):
            raise UsageError(
                f"{name!r} is not a valid Python project name",
                hint="letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
            )
    projects = sorted({normalize_name(n) for n in names})
    repositories = [project_repository(namespace, p) for p in projects]
    if repositories[0].registry is None:
        raise UsageError(
            f"{namespace!r} names no registry", hint="reserve names in a registry: registry.example.com/py"
        )
    results = []
    with scoped(session) as active:
        store = active.store(repositories[0])
        for project, repository in zip(projects, repositories, strict=True):
            data = reservation_manifest(project).to_json()
            tag_ref = repository.with_tag(RESERVED_TAG)
            try:
                descriptor, _ = store.fetch_manifest(tag_ref)
            except NotFoundError:
                descriptor = None
            if descriptor is not None and descriptor.digest == Digest.of(data):
                results.append(ReserveResult(project, tag_ref.pinned(descriptor.digest), created=False))
                continue
            upload_blobs(store, repository.repository, [EMPTY_CONFIG])
            pushed = store.push_manifest(tag_ref, data, mediatype.OCI_MANIFEST)
            results.append(ReserveResult(project, tag_ref.pinned(pushed.digest), created=True))
    return results
