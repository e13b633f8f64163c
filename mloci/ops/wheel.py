"""Python distributions in a registry: publish files into a version's release, pull, yank, and the
reads the package index serves (``docs/wheels.md``).

A release is read, extended and written back under its version tag. Registries without
conditional writes cannot make that atomic, so a writer re-reads after writing (twice, with a
pause) and merges again when a concurrent writer's manifest replaced its files, as
:mod:`mloci.ops.referrers` does. Files are never removed or replaced by a merge.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import Version

from mloci import leftovers, settings
from mloci.bundle.git import GitState, git_state
from mloci.errors import (
    ConflictError,
    IntegrityError,
    MlociError,
    NotFoundError,
    RegistryError,
    UnsupportedError,
    UsageError,
)
from mloci.ops._retry import until_kept
from mloci.ops.progress import Silent, TransferListener
from mloci.ops.push import upload_blobs
from mloci.python.artifact import Plan, Release, ReleaseFile, merge, with_yank
from mloci.python.distribution import Distribution, read_distribution
from mloci.python.filenames import is_project_name, normalize_name, parse_version, version_of_tag, version_tag
from mloci.python.uploadtime import push_time
from mloci.store import ListsRepositories, Session, Store, scoped
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Manifest
from mloci.types.reference import Reference
from mloci.types.timestamps import now_rfc3339

# Pauses before each re-read of a release just written (seconds); the writer merges again if needed.
_VERIFY_PAUSES = (0.05, 0.2)
_MANIFEST_ATTEMPTS = 4


# -- names ---------------------------------------------------------------------------------------


def project_repository(namespace: str, project: str) -> Reference:
    """The repository of ``project`` under ``namespace`` (``[registry/]path``): ``namespace/<normalized name>``."""
    base = namespace.strip().rstrip("/")
    if "@" in base:
        raise UsageError(
            f"{namespace!r} names a digest; name a registry and namespace such as registry.example.com/py"
        )
    name = normalize_name(project)
    ref = Reference.parse(f"{base}/{name}" if base else name, default_registry=settings.default_registry())
    if ref.tag is not None:
        raise UsageError(
            f"{namespace!r} names a tag; name a registry and namespace such as registry.example.com/py"
        )
    return ref


@dataclass(frozen=True)
class ReleaseSpec:
    """What a user named: a project repository and optionally a version (None: the latest)."""

    repository: Reference
    version: Version | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}=={self.version}" if self.version else str(self.repository)


def parse_release_spec(text: str) -> ReleaseSpec:
    """``[registry/]namespace/project[==version | :tag | @sha256:…]``; the project name is normalized."""
    version: Version | None = None
    name = text.strip()
    if "==" in name:
        name, _, version_text = name.partition("==")
        version = parse_version(version_text.strip())
    head, slash, last = name.rpartition("/")
    last, at, digest_text = last.partition("@")
    project, colon, rest = last.partition(":")
    if not is_project_name(project):
        raise UsageError(f"invalid project name {project!r} in {text!r}")
    normalized = normalize_name(project)
    ref = Reference.parse(
        f"{head}{slash}{normalized}{colon}{rest}{at}{digest_text}",
        default_registry=settings.default_registry(),
    )
    if ref.tag is not None:
        tagged = version_of_tag(ref.tag)
        if tagged is None:
            raise UsageError(
                f"tag {ref.tag!r} in {text!r} is not a version", hint="name it as PROJECT==VERSION"
            )
        if version is not None and tagged != version:
            raise UsageError(f"{text!r} names two versions")
        version = tagged
    return ReleaseSpec(ref.with_tag(None).with_digest(None), version, ref.digest)


# -- reading -------------------------------------------------------------------------------------


def _release_from(data: bytes, descriptor_media_type: str, digest: Digest) -> Release:
    if descriptor_media_type in mediatype.INDEX_TYPES:
        raise RegistryError(f"manifest {digest} is an index, not a Python package release")
    return Release.from_manifest(Manifest.from_json(data), digest)


def read_release(store: Store, repository: Reference, version: Version | str) -> Release | None:
    """The release of ``version`` in ``repository``, or None when it has none."""
    ref = repository.with_digest(None).with_tag(version_tag(version))
    try:
        descriptor, data = store.fetch_manifest(ref)
    except NotFoundError:
        return None
    return _release_from(data, descriptor.media_type, descriptor.digest)


def list_releases(store: Store, repository: Reference, *, concurrency: int = 8) -> list[Release]:
    """Every release in ``repository``, oldest version first. NotFoundError when the repository is unknown.

    Tags that are no version (signatures, aliases) and versions tagged on other artifacts are skipped.
    """
    versions = sorted(
        {v for tag in store.list_tags(repository.repository) if (v := version_of_tag(tag)) is not None}
    )

    def one(version: Version) -> Release | None:
        try:
            return read_release(store, repository, version)
        except (NotFoundError, RegistryError):
            return None  # deleted meanwhile, or some other artifact under a version-like tag

    if len(versions) <= 1:
        found = [one(v) for v in versions]
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(versions))) as pool:
            found = list(pool.map(one, versions))
    return [release for release in found if release is not None]


def list_projects(store: Store, namespace: str) -> list[str]:
    """Repositories directly under ``namespace`` (a repository path without registry), from the catalog.

    Stores without a catalog (or that refuse to show it) yield an empty list: the simple index's
    root page is informative, installers ask for project pages directly. An unreachable
    registry is an error, never an empty list.
    """
    prefix = f"{namespace.strip('/')}/" if namespace.strip("/") else ""
    if not isinstance(store, ListsRepositories):
        return []
    try:
        repositories = store.repositories()
    except UnsupportedError:
        return []
    names = {r[len(prefix) :] for r in repositories if r.startswith(prefix)}
    return sorted(n for n in names if "/" not in n and is_project_name(n))


# -- publishing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleasePushResult:
    reference: Reference  # repository:version-tag@digest
    digest: Digest
    project: str
    version: str
    added: tuple[str, ...]
    present: tuple[str, ...]
    blobs_uploaded: int
    bytes_uploaded: int

    @property
    def unchanged(self) -> bool:
        """Every file was already published with the same content: nothing was written."""
        return not self.added

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "project": self.project,
            "version": self.version,
            "added": list(self.added),
            "present": list(self.present),
            "blobsUploaded": self.blobs_uploaded,
            "bytesUploaded": self.bytes_uploaded,
            "unchanged": self.unchanged,
        }


def _write_release(store: Store, tag_ref: Reference, manifest: Manifest, blobs: Sequence[Blob]) -> None:
    """PUT the release manifest, retrying when the registry briefly does not know a blob it references.

    distribution rewrites a blob's repository link in place when the same blob is uploaded again, so
    a manifest naming a blob that a concurrent writer is re-uploading (two wheels of one version
    often share their METADATA) can be refused as "blob unknown" for a moment.
    """
    data = manifest.to_json()
    for attempt in range(_MANIFEST_ATTEMPTS):
        try:
            store.push_manifest(tag_ref, data, mediatype.OCI_MANIFEST)
            return
        except IntegrityError:
            if attempt == _MANIFEST_ATTEMPTS - 1:
                raise
        time.sleep(0.1 * (attempt + 1) * random.uniform(0.5, 1.5))  # noqa: S311
        upload_blobs(store, tag_ref.repository, blobs)  # HEAD first: only a blob really missing is sent


def _kept(store: Store, repository: Reference, version: str, expected: dict[str, Digest]) -> Release | None:
    """The release after a write, once it still holds every ``expected`` file; None when a racing writer dropped one."""
    release: Release | None = None
    for pause in _VERIFY_PAUSES:
        time.sleep(pause * random.uniform(0.5, 1.5))  # noqa: S311
        release = read_release(store, repository, version)
        if release is None:
            return None
        for filename, digest in expected.items():
            found = release.file(filename)
            if found is None:
                return None
            if found.layer.digest != digest:
                raise ConflictError(
                    f"{filename} was published concurrently with other content ({found.layer.digest})",
                    hint="published files are immutable; bump the version",
                )
    return release


def publish(
    store: Store,
    repository: Reference,
    dists: Sequence[Distribution],
    *,
    git: GitState | None = None,
    concurrency: int = 4,
    listener: TransferListener | None = None,
    created: str | None = None,
) -> ReleasePushResult:
    """Add ``dists`` (files of one project version) to that version's release in ``repository``.

    New file names are added; a name already published with the same bytes is a no-op; one
    published with other bytes is refused (ConflictError) before anything is uploaded. New files
    record ``created`` (RFC 3339) as their PEP 700 upload time, by default now.
    """
    created = created or now_rfc3339()
    if not dists:
        raise UsageError("no distribution files to publish")
    version = dists[0].version
    tag_ref = repository.with_digest(None).with_tag(version_tag(version))
    expected = {d.filename: d.digest for d in dists}
    uploaded: set[Digest] = set()
    added: set[str] = set()
    blobs_uploaded = 0
    bytes_uploaded = 0

    first: list[Release | None] = []  # the release as the first attempt found it

    def attempt() -> ReleasePushResult | None:
        nonlocal blobs_uploaded, bytes_uploaded
        current = read_release(store, repository, version)
        if not first:
            first.append(current)
        plan = merge(current, dists, git, created=created)
        if plan.unchanged and current is not None:
            return _pushed(repository, current, plan, added, blobs_uploaded, bytes_uploaded)
        pending = [b for b in plan.blobs if b.descriptor.digest not in uploaded]
        counts = upload_blobs(
            store, repository.repository, pending, concurrency=concurrency, listener=listener
        )
        uploaded.update(b.descriptor.digest for b in pending)
        blobs_uploaded += counts.uploaded
        bytes_uploaded += counts.bytes_sent
        added.update(plan.added)
        _write_release(store, tag_ref, plan.manifest, plan.blobs)
        kept = _kept(store, repository, version, expected)
        return _pushed(repository, kept, plan, added, blobs_uploaded, bytes_uploaded) if kept else None

    result = until_kept(attempt, what=f"{tag_ref} (the files were not kept)", hint="push again")
    if first and first[0] is not None and first[0].digest != result.digest:
        from mloci.ops.wheel_attestations import carry_forward  # noqa: PLC0415  (sigstore parsing)

        carry_forward(store, repository, first[0], result.digest)
    return result


def _pushed(
    repository: Reference, release: Release, plan: Plan, added: set[str], blobs: int, nbytes: int
) -> ReleasePushResult:
    mine = {*plan.added, *plan.present}
    return ReleasePushResult(
        reference=repository.with_tag(version_tag(release.version)).pinned(release.digest),
        digest=release.digest,
        project=release.project,
        version=release.version,
        added=tuple(sorted(added)),
        present=tuple(sorted(mine - added)),
        blobs_uploaded=blobs,
        bytes_uploaded=nbytes,
    )


def push_distributions(
    paths: Sequence[Path],
    namespace: str,
    *,
    session: Session | None = None,
    listener: TransferListener | None = None,
) -> list[ReleasePushResult]:
    """Publish wheel and sdist files into ``namespace``: one release per project version they belong to.

    Every file is checked (name, metadata, archive) and every release checked for conflicting
    files before anything is uploaded. The git commit of the work tree holding the first file is
    recorded, as ``mloci push`` does.
    """
    if not paths:
        raise UsageError("name at least one wheel or sdist")
    dists = [read_distribution(path) for path in paths]
    groups: dict[tuple[str, Version], list[Distribution]] = {}
    for dist in dists:
        groups.setdefault((dist.project, parse_version(dist.version)), []).append(dist)
    repositories = {key: project_repository(namespace, key[0]) for key in groups}
    git = git_state(paths[0].resolve().parent)
    created = push_time(paths[0].resolve().parent, git)
    first = next(iter(repositories.values()))
    with scoped(session) as active:
        store = active.store(first)
        listener = listener or Silent()
        for key, group in groups.items():
            merge(read_release(store, repositories[key], key[1]), group, git)  # conflicts, before any upload
        listener.begin(sum(d.size for d in dists), len(dists))
        try:
            return [
                publish(
                    store,
                    repositories[key],
                    group,
                    git=git,
                    concurrency=active.options.concurrency,
                    listener=listener,
                    created=created,
                )
                for key, group in sorted(groups.items())
            ]
        finally:
            listener.end()


# -- yanking ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YankResult:
    reference: Reference
    digest: Digest
    yanked: bool
    reason: str | None
    unchanged: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "yanked": self.yanked,
            "reason": self.reason,
            "unchanged": self.unchanged,
        }


def yank(
    spec: str, *, reason: str | None = None, undo: bool = False, session: Session | None = None
) -> YankResult:
    """Mark a release yanked (PEP 592) with ``reason``, or un-yank it with ``undo``. Its files stay as they are."""
    parsed = parse_release_spec(spec)
    if parsed.version is None:
        raise UsageError(f"name the version to yank: {spec}==VERSION")
    with scoped(session) as active:
        store = active.store(parsed.repository)
        version = parsed.version
        wanted = None if undo else (reason or "")

        before: list[Release] = []

        def attempt() -> YankResult | None:
            release = read_release(store, parsed.repository, version)
            if release is None:
                raise NotFoundError(f"{parsed} has no release")
            if not before:
                before.append(release)
            if release.yanked == wanted:
                return _yanked(parsed, release, unchanged=True)
            tag_ref = parsed.repository.with_tag(version_tag(version))
            _write_release(store, tag_ref, with_yank(release, wanted), ())
            time.sleep(_VERIFY_PAUSES[-1] * random.uniform(0.5, 1.5))  # noqa: S311
            after = read_release(store, parsed.repository, version)
            return _yanked(parsed, after, unchanged=False) if after and after.yanked == wanted else None

        result = until_kept(attempt, what=str(parsed), hint="yank again")
        if before and not result.unchanged:
            from mloci.ops.wheel_attestations import carry_forward  # noqa: PLC0415  (sigstore parsing)

            carry_forward(store, parsed.repository, before[0], result.digest)
        return result


def _yanked(spec: ReleaseSpec, release: Release, *, unchanged: bool) -> YankResult:
    return YankResult(
        reference=spec.repository.with_tag(version_tag(release.version)).pinned(release.digest),
        digest=release.digest,
        yanked=release.yanked is not None,
        reason=release.yanked or None,
        unchanged=unchanged,
    )


# -- pulling ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleasePullResult:
    reference: Reference
    digest: Digest
    files: tuple[Path, ...]
    skipped: tuple[Path, ...]  # already there with the same content
    bytes_downloaded: int
    yanked: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "files": [str(p) for p in self.files],
            "unchanged": [str(p) for p in self.skipped],
            "bytesDownloaded": self.bytes_downloaded,
            "yanked": self.yanked,
        }


def _latest(store: Store, repository: Reference, *, pre: bool) -> Release:
    """The highest version that is not yanked: final releases first, pre-releases when there are none (or ``pre``)."""
    try:
        tags = store.list_tags(repository.repository)
    except NotFoundError:
        raise NotFoundError(f"{repository} has no releases (no such repository)") from None
    versions = sorted({v for tag in tags if (v := version_of_tag(tag)) is not None}, reverse=True)
    passes = [versions] if pre else [[v for v in versions if not v.is_prerelease], versions]
    for candidates in passes:
        for version in candidates:
            with contextlib.suppress(RegistryError):
                release = read_release(store, repository, version)
                if release is not None and release.yanked is None:
                    return release
    raise NotFoundError(f"{repository} has no release that is not yanked")


def _resolve(store: Store, spec: ReleaseSpec, *, pre: bool) -> Release:
    if spec.digest is not None:
        descriptor, data = store.fetch_manifest(spec.repository.with_digest(spec.digest))
        return _release_from(data, descriptor.media_type, descriptor.digest)
    if spec.version is None:
        return _latest(store, spec.repository, pre=pre)
    release = read_release(store, spec.repository, spec.version)
    if release is None:
        raise NotFoundError(f"{spec} has no release")
    return release


def _same_file(path: Path, sha256: str | None, size: int) -> bool:
    if sha256 is None or not path.is_file() or path.is_symlink() or path.stat().st_size != size:
        return False
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest() == sha256


def stream_file(
    store: Store, repository: str, file: ReleaseFile, *, metadata: bool = False
) -> Iterator[bytes]:
    """The bytes of a release file (or its core metadata), verified: raises instead of ending on bad content."""
    descriptor = file.metadata if metadata else file.layer
    if descriptor is None:
        raise NotFoundError(f"{file.filename} has no core metadata layer")
    with store.open_blob(repository, descriptor) as chunks:
        yield from chunks


def pull_release(
    spec: str,
    dest: Path,
    *,
    filters: Sequence[str] = (),
    pre: bool = False,
    session: Session | None = None,
) -> ReleasePullResult:
    """Download a release's files (those matching a glob in ``filters``, else all) into ``dest``.

    Each file appears under its name only once its digest verified; a file already there with
    the same content is left alone.
    """
    parsed = parse_release_spec(spec)
    with scoped(session) as active:
        store = active.store(parsed.repository)
        release = _resolve(store, parsed, pre=pre)
        chosen = [
            f for f in release.files if not filters or any(fnmatch.fnmatch(f.filename, g) for g in filters)
        ]
        if not chosen:
            wanted = f" matching {', '.join(filters)}" if filters else ""
            raise NotFoundError(f"{parsed.repository} {release.version} has no files{wanted}")
        dest.mkdir(parents=True, exist_ok=True)
        leftovers.sweep(dest, tuple(_partial_prefix(dest / f.filename) for f in chosen))
        written: list[Path] = []
        skipped: list[Path] = []
        nbytes = 0
        for file in chosen:
            target = dest / file.filename
            if _same_file(target, file.sha256, file.layer.size):
                skipped.append(target)
                continue
            _download(store, parsed.repository.repository, file, target)
            written.append(target)
            nbytes += file.layer.size
        return ReleasePullResult(
            reference=parsed.repository.with_tag(version_tag(release.version)).pinned(release.digest),
            digest=release.digest,
            files=tuple(written),
            skipped=tuple(skipped),
            bytes_downloaded=nbytes,
            yanked=release.yanked,
        )


def _partial_prefix(target: Path) -> str:
    return f".{target.name}.mloci-"


def _download(store: Store, repository: str, file: ReleaseFile, target: Path) -> None:
    # Named after this process and locked while written: the next pull sweeps what a SIGKILL left.
    partial = target.with_name(
        f"{leftovers.owned_prefix(_partial_prefix(target))}{secrets.token_hex(4)}.part"
    )
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        leftovers.hold(fd)
        with os.fdopen(fd, "wb") as handle:
            for chunk in stream_file(store, repository, file):
                handle.write(chunk)
        partial.replace(target)
    except OSError as exc:
        raise MlociError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
