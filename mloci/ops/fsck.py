"""fsck: verify every blob of the local store against its digest; repair from a registry.

Each blob is hashed as it streams from disk (1 MiB at a time: flat memory whatever its size)
and compared with its file name, which is its digest. Blobs that manifests name but the pool
lacks are reported too. ``repair_from`` (``REGISTRY[/NAMESPACE]``) fetches each damaged or
missing blob from ``REGISTRY/NAMESPACE/<repository>`` for the repositories that use it,
verifies it while it streams, and replaces the file atomically. What cannot be repaired
stays reported, with the artifacts that use it, so the user knows what to push again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloci.errors import MlociError, NotAManifestError, UnsupportedError, UsageError
from mloci.store import RepairsBlobs, Session, scoped
from mloci.store.base import MAX_MANIFEST_SIZE
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.digest import Digest, hash_file
from mloci.types.manifest import Descriptor
from mloci.types.reference import Reference


@dataclass
class BlobProblem:
    digest: Digest
    path: Path
    kind: str  # "damaged" (content does not match the digest) or "missing"
    used_by: list[str] = field(default_factory=list)  # repository:tag or repository@digest
    repaired_from: str | None = None
    repair_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": str(self.digest),
            "path": str(self.path),
            "kind": self.kind,
            "usedBy": self.used_by,
            "repairedFrom": self.repaired_from,
            "repairError": self.repair_error,
        }


@dataclass
class FsckReport:
    store: str
    blobs_checked: int = 0
    bytes_checked: int = 0
    problems: list[BlobProblem] = field(default_factory=list)
    broken_tags: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> list[BlobProblem]:
        return [p for p in self.problems if p.repaired_from is None]

    @property
    def intact(self) -> bool:
        return not self.remaining and not self.broken_tags

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "blobsChecked": self.blobs_checked,
            "bytesChecked": self.bytes_checked,
            "problems": [p.to_json() for p in self.problems],
            "repaired": len(self.problems) - len(self.remaining),
            "brokenTags": self.broken_tags,
            "intact": self.intact,
        }


@dataclass
class _Use:
    descriptor: Descriptor
    repositories: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


def _uses(store: RepairsBlobs) -> dict[Digest, _Use]:
    """Every blob a listed manifest reaches (manifests included), with who uses it."""
    uses: dict[Digest, _Use] = {}
    pending: list[tuple[dict[str, Any], str, str]] = []
    for entry, repository in store.listed():
        name = entry.annotation(ann.REF_NAME)
        label = name or f"{repository}@{entry.digest}"
        pending.append((entry.to_dict(), repository, label))
    while pending:
        item, repository, label = pending.pop()
        try:
            descriptor = Descriptor.model_validate(item).model_copy(update={"annotations": None})
        except ValueError:
            continue
        use = uses.setdefault(descriptor.digest, _Use(descriptor))
        first_visit = repository not in use.repositories
        use.repositories.add(repository)
        use.names.add(label)
        if not first_visit or descriptor.size > MAX_MANIFEST_SIZE:
            continue
        try:
            document = json.loads(store.blob_path(descriptor.digest).read_bytes())
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(document, dict) or document.get("schemaVersion") != 2:
            continue  # a layer or config (or a damaged manifest): nothing further to follow
        for child in [document.get("config"), *(document.get("layers") or [])]:
            if isinstance(child, dict):
                try:
                    blob = Descriptor.model_validate(child).model_copy(update={"annotations": None})
                except ValueError:
                    continue
                blob_use = uses.setdefault(blob.digest, _Use(blob))
                blob_use.repositories.add(repository)
                blob_use.names.add(label)
        for child in [document.get("subject"), *(document.get("manifests") or [])]:
            if isinstance(child, dict):
                pending.append((child, repository, label))
    return uses


def _broken_tags(store: RepairsBlobs) -> list[str]:
    """Tags that name a blob instead of a manifest (older versions let ``tag`` do that)."""
    broken = []
    for entry, repository in store.listed():
        name = entry.annotation(ann.REF_NAME)
        if name is None:
            continue
        try:
            store.resolve(Reference(None, repository, name.rpartition(":")[2]))
        except NotAManifestError as exc:
            broken.append(exc.message)
        except MlociError:
            continue  # missing or damaged: reported with the blobs
    return broken


def _parse_source(text: str) -> tuple[str, str]:
    """``REGISTRY[/NAMESPACE]`` → (registry, namespace prefix)."""
    registry, _, namespace = text.strip("/").partition("/")
    if not registry or ("." not in registry and ":" not in registry and registry != "localhost"):
        raise UsageError(
            f"--repair-from {text!r} names no registry", hint="e.g. registry.example.com/ml or 127.0.0.1:5000"
        )
    return registry, namespace


def _repair(store: RepairsBlobs, problem: BlobProblem, use: _Use, source: str, session: Session) -> None:
    registry, namespace = _parse_source(source)
    errors: list[str] = []
    for repository in sorted(use.repositories):
        remote = "/".join(p for p in (namespace, repository) if p)
        try:
            ref = Reference.parse(f"{registry}/{remote}")
        except MlociError as exc:
            errors.append(str(exc))
            continue
        remote_store = session.store(ref)
        try:
            if use.descriptor.media_type in mediatype.MANIFEST_TYPES:
                # Registries serve manifests from /manifests/, not always from /blobs/.
                _, data = remote_store.fetch_manifest(ref.with_digest(use.descriptor.digest))
                store.replace_blob(use.descriptor, iter([data]))
            else:
                with remote_store.open_blob(ref.repository, use.descriptor) as chunks:
                    store.replace_blob(use.descriptor, chunks)
        except MlociError as exc:
            errors.append(f"{registry}/{remote}: {exc.message}")
            continue
        problem.repaired_from = f"{registry}/{remote}"
        return
    problem.repair_error = "; ".join(errors) or "no repository uses it"


def fsck(
    *,
    repair_from: str | None = None,
    session: Session | None = None,
    progress: Callable[[Path], None] | None = None,
) -> FsckReport:
    """Check (and with ``repair_from``, repair) every blob of the local store."""
    if repair_from is not None:
        _parse_source(repair_from)  # a bad value fails before the (long) check
    with scoped(session) as active:
        store = active.store(Reference(None, "fsck"))  # the local store of $MLOCI_HOME
        if not isinstance(store, RepairsBlobs):
            raise UnsupportedError(f"the {store.location} cannot be checked blob by blob")
        report = FsckReport(store.location)
        uses = _uses(store)
        report.broken_tags = _broken_tags(store)
        present: set[Digest] = set()
        for digest, path in store.blob_files():
            present.add(digest)
            if progress:
                progress(path)
            try:
                actual, size = hash_file(path)
            except OSError as exc:
                raise MlociError(f"cannot read {path}: {exc.strerror or exc}") from exc
            report.blobs_checked += 1
            report.bytes_checked += size
            if actual != digest:
                use = uses.get(digest)
                report.problems.append(BlobProblem(digest, path, "damaged", sorted(use.names) if use else []))
        for digest, use in sorted(uses.items(), key=lambda item: str(item[0])):
            if digest not in present:
                report.problems.append(
                    BlobProblem(digest, store.blob_path(digest), "missing", sorted(use.names))
                )
        if repair_from is not None:
            for problem in report.problems:
                use = uses.get(problem.digest)
                if use is None:
                    problem.repair_error = "no artifact uses it ('mloci gc' removes it)"
                    continue
                _repair(store, problem, use, repair_from, active)
    return report
