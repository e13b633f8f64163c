"""The catalog: models, versions, promotion history and packages of one registry namespace.

The registry stays the single source of truth. What the catalog keeps is a snapshot per
repository — its tag list and what each tag names — refreshed when older than ``refresh``
seconds; everything a digest names is parsed once and kept (content never changes). Reads fan
out over a thread pool: one request per new tag, none for what the cache already holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mloci import settings
from mloci.catalog import _ops
from mloci.catalog.cache import CachingStore, ContentCache
from mloci.catalog.models import (
    Badges,
    Change,
    Comparison,
    EnvironmentTarget,
    FileEntry,
    Image,
    Lineage,
    ModelCard,
    ModelDetail,
    ModelPage,
    ModelSummary,
    Package,
    PackageFile,
    PackageRelease,
    Promotion,
    Referrer,
    SignatureCheck,
    Verification,
    VersionDetail,
    VersionSummary,
)
from mloci.catalog.query import Query
from mloci.errors import (
    AuthError,
    IntegrityError,
    MlociError,
    NotFoundError,
    RegistryError,
    UnsupportedError,
    UsageError,
)
from mloci.project import Environment, ProjectConfig
from mloci.store import LayoutStore, Session, Store, StoreOptions, open_registry
from mloci.store.registry.auth import Credentials
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.types.reference import Reference
from mloci.types.semver import is_version_tag, sort_key

if TYPE_CHECKING:
    from mloci.trust.verifier import TrustRule

log = logging.getLogger("mloci.catalog")

T = TypeVar("T")
R = TypeVar("R")

_MAX_REFERRER_DEPTH = 4
_MAX_VIEWS = 64  # callers' views kept open (one registry connection pool each)


@dataclass(frozen=True)
class CatalogConfig:
    """What the catalog shows: the repositories under ``namespace`` in ``registry`` (None: the local store)."""

    registry: str | None = None
    namespace: str = ""
    options: StoreOptions = field(default_factory=StoreOptions)
    cache_dir: Path | None = None  # None: $MLOCI_HOME/cache
    refresh: float = 5.0  # seconds a tag list is trusted before it is read again
    workers: int = 16
    # Model names to show even when the registry does not list its catalog (many refuse /v2/_catalog).
    models: tuple[str, ...] = ()
    verify_keys: tuple[Path, ...] = ()  # public keys signatures are verified against on version pages
    # A keyless signer (certificate identity and OIDC issuer) whose bundles verify, and the
    # sigstore trusted root (None: $MLOCI_TRUSTED_ROOT, else sigstore's own).
    verify_identity: str | None = None
    verify_issuer: str | None = None
    trusted_root: Path | None = None
    # The project's environments (mloci.toml), in promotion order; none: every alias found is one.
    environments: tuple[Environment, ...] = ()

    @property
    def prefix(self) -> str:
        namespace = self.namespace.strip("/")
        return f"{namespace}/" if namespace else ""

    def repository(self, name: str) -> Reference:
        """The repository of the model ``name`` (UsageError for a name that is no repository path)."""
        text = f"{self.prefix}{name.strip('/')}"
        ref = Reference.parse(f"{self.registry}/{text}" if self.registry else text)
        if ref.registry != self.registry or ref.tag or ref.digest:
            raise UsageError(f"{name!r} is not a model name")
        return ref

    def name_of(self, repository: str) -> str:
        return repository[len(self.prefix) :] if self.prefix else repository


@dataclass(frozen=True)
class _Info:
    """What one manifest (by digest) says, parsed once."""

    digest: Digest
    media_type: str
    raw: dict[str, Any]
    kind: str
    annotations: dict[str, str]
    layers: tuple[Descriptor, ...]
    bundle_layer: Descriptor | None

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def metrics(self) -> dict[str, Any]:
        raw = self.annotations.get(ann.METRICS)
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def _parse_info(descriptor: Descriptor, data: bytes) -> _Info:
    try:
        raw = json.loads(data)
    except ValueError:
        raise IntegrityError(f"manifest {descriptor.digest} is not JSON") from None
    if not isinstance(raw, dict):
        raise IntegrityError(f"manifest {descriptor.digest} is not a JSON object")
    notes = raw.get("annotations")
    annotations = {str(k): str(v) for k, v in notes.items()} if isinstance(notes, dict) else {}
    layers: list[Descriptor] = []
    bundle_layer = None
    kind = str(raw.get("artifactType") or descriptor.media_type)
    if descriptor.media_type not in mediatype.INDEX_TYPES:
        config = raw.get("config")
        if not raw.get("artifactType") and isinstance(config, dict):
            kind = str(config.get("mediaType") or kind)
        for item in raw.get("layers") or []:
            try:
                layer = Descriptor.model_validate(item)
            except ValueError:
                continue
            layers.append(layer)
            if layer.annotation(ann.ROLE) == ann.ROLE_BUNDLE_MANIFEST and bundle_layer is None:
                bundle_layer = layer
    return _Info(
        digest=descriptor.digest,
        media_type=descriptor.media_type,
        raw=raw,
        kind=kind,
        annotations=annotations,
        layers=tuple(layers),
        bundle_layer=bundle_layer,
    )


@dataclass
class _Repo:
    """A repository as of its last refresh."""

    repository: str
    tags: dict[str, Digest]  # every non-internal tag
    all_tags: frozenset[str]
    record_tags: tuple[str, ...]  # promotion-record tags, newest first (their names hold the time)
    checked: float


def _version_of(info: _Info, tags: Sequence[str]) -> str | None:
    return info.annotations.get(ann.VERSION) or next((t for t in tags if is_version_tag(t)), None)


def _summary(info: _Info, tags: Sequence[str], badges: Badges, attachments: int) -> VersionSummary:
    """One version as the lists show it; ``tags`` are the (sorted) tags naming its digest."""
    return VersionSummary(
        digest=str(info.digest),
        version=_version_of(info, tags),
        tags=[t for t in tags if is_version_tag(t)],
        aliases=[t for t in tags if not is_version_tag(t)],
        revision=info.annotations.get(ann.REVISION),
        created=info.annotations.get(ann.CREATED),
        size=info.size,
        framework=info.annotations.get(ann.FRAMEWORK),
        metrics=info.metrics,
        badges=badges,
        attachments=attachments,
    )


class Catalog:
    """Read access to one registry namespace (or the local store), with a shared cache.

    :meth:`as_caller` gives the catalog as one caller's credentials see it: a view with its own
    registry connection and its own tag snapshots (what a caller may list is what the registry
    lets *them* list), sharing only what a digest names — and a digest is only ever looked up
    after the view's own authorised read of a tag or of that digest in that repository.
    """

    def __init__(
        self,
        config: CatalogConfig,
        *,
        credentials: Credentials | None = None,
        _parent: Catalog | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials
        if _parent is None:
            cache_dir = config.cache_dir or (settings.home() / "cache")
            self.cache = ContentCache(cache_dir / "catalog.sqlite")
            self._pool = ThreadPoolExecutor(max_workers=max(config.workers, 1), thread_name_prefix="catalog")
            # Repositories fan out on a pool of their own: their tag reads use self._pool, never waiting on it.
            self._repo_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="catalog-repo")
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-refresh")
            self._infos: dict[Digest, _Info] = {}
            self._bundles: dict[Digest, dict[str, Any] | None] = {}
        else:
            self.cache = _parent.cache
            self._pool, self._repo_pool = _parent._pool, _parent._repo_pool
            self._background = _parent._background
            self._infos, self._bundles = _parent._infos, _parent._bundles  # keyed by digest
        self._parent = _parent
        self._views: OrderedDict[str, Catalog] = OrderedDict()
        self._direct = self._open(credentials)
        self.store: Store = CachingStore(self._direct, self.cache, config.registry or "local")
        self._held: set[tuple[str, Digest]] = set()  # untagged digests the registry showed in a repository
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._aside: dict[str, _Repo] = {}  # environment repositories outside the namespace
        self._listed: tuple[float, tuple[str, ...]] = (0.0, ())
        self._referrers: dict[Digest, tuple[float, tuple[Referrer, ...]]] = {}
        self._refreshing = False
        self._rows: dict[str, tuple[_Repo, ModelSummary | None]] = {}
        self._history: dict[str, tuple[_Repo, bool, tuple[Promotion, ...]]] = {}
        self._details: dict[str, tuple[_Repo, ModelDetail]] = {}
        self._verified: dict[Digest, tuple[tuple[Digest, bool, float], list[SignatureCheck]]] = {}
        self._checks: dict[tuple[Digest, Digest], Verification] = {}  # (subject, referrer): immutable
        self._rules: list[TrustRule] | None = None

    def _open(self, creds: Credentials | None) -> Store:
        if self.config.registry is None:
            return LayoutStore(settings.home())
        return open_registry(
            self.config.registry,
            self.config.options,
            credentials_override=creds,
            pool_size=self.config.workers,
            remember_locations=False,
        )

    def as_caller(self, creds: Credentials) -> Catalog:
        """The catalog as ``creds`` see it (kept for the next request with the same credentials).

        The local store has no credentials: every caller sees it as the server does.
        """
        if self.config.registry is None:
            return self
        if self._parent is not None:
            return self._parent.as_caller(creds)
        key = credentials_key(creds)
        with self._lock:
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
                return view
            view = self._views[key] = Catalog(self.config, credentials=creds, _parent=self)
            evicted = self._views.popitem(last=False)[1] if len(self._views) > _MAX_VIEWS else None
        if evicted is not None:
            evicted.close()
        return view

    def invalidate(self, repository: str) -> None:
        """Forget the snapshot of ``repository`` (in every caller's view): the next read lists its tags again."""
        with self._lock:
            self._repos.pop(repository, None)
            self._aside.pop(repository, None)
            views = list(self._views.values())
        for view in views:
            view.invalidate(repository)

    def session(self, creds: Credentials | None) -> Session:
        """A session for a write: with the caller's credentials, never the server's.

        AuthError for a registry when the caller sent none. The local store has no credentials:
        it belongs to the user running the server.
        """
        if self.config.registry is not None and creds is None:
            raise AuthError(
                "a write needs your registry credentials (HTTP Basic or Bearer); the server's are never used"
            )
        return Session(self.config.options, credentials=creds)

    def promote(
        self,
        name: str,
        ref: str,
        environment: str,
        *,
        creds: Credentials | None,
        actor: str | None,
        reason: str | None = None,
        gate: Callable[[Session], _ops.Gate] | None = None,
    ) -> _ops.PromotionResult:
        """Point ``environment``'s alias at version or digest ``ref`` of ``name``, as the caller
        (``gate`` is called with the caller's session, to check a policy with their reads)."""
        repository = self.config.repository(name)
        project = self._project_for(environment, repository)
        target = (
            repository.with_digest(Digest.parse(ref))
            if ref.startswith(("sha256:", "sha512:"))
            else repository.with_tag(ref)
        )
        session = self.session(creds)
        try:
            return _ops.promote(
                target,
                environment,
                project=project,
                reason=reason,
                session=session,
                gate=gate(session) if gate is not None else None,
                actor=actor,
            )
        finally:
            session.close()
            self.invalidate(repository.repository)
            if project is not None:
                self.invalidate(project.environments[0].reference.repository)

    def rollback(
        self,
        name: str,
        environment: str,
        *,
        creds: Credentials | None,
        actor: str | None,
        reason: str | None = None,
    ) -> _ops.PromotionResult:
        repository = self.config.repository(name)
        project = self._project_for(environment, repository)
        session = self.session(creds)
        try:
            return _ops.rollback(
                repository, environment, project=project, reason=reason, session=session, actor=actor
            )
        finally:
            session.close()
            self.invalidate(repository.repository)
            if project is not None:
                self.invalidate(project.environments[0].reference.repository)

    def _project_for(self, environment: str, repository: Reference) -> ProjectConfig | None:
        """The configuration a promotion of ``repository`` into ``environment`` runs with (None: none
        configured, an ad-hoc environment named like its alias, as `mloci promote` without a project).

        The model the configured environments live in is promoted across them as `mloci promote`
        does (copied into an environment's own repository, under its alias); any other model reads
        the environments in place, so its promotions move the alias in its own repository. UsageError
        for an unconfigured name; UnsupportedError for an environment in another registry (the
        caller's credentials are for this one).
        """
        if not self.config.environments:
            return None
        env = next((e for e in self.config.environments if e.name == environment), None)
        if env is None:
            known = ", ".join(e.name for e in self.config.environments)
            raise UsageError(
                f"unknown environment {environment!r}", hint=f"the configuration defines: {known}"
            )
        placed = {e.reference.repository for e in self.config.environments if self._ours(e)}
        if repository.repository not in placed:
            env = env.model_copy(update={"repository": str(repository.with_tag(None).with_digest(None))})
        elif not self._ours(env):
            raise UnsupportedError(
                f"environment {environment!r} lives in another registry ({env.repository}); "
                "promote to it with `mloci promote` from the project"
            )
        return ProjectConfig(environments=[env])

    def close(self) -> None:
        with self._lock:
            views = list(self._views.values())
            self._views.clear()
        for view in views:
            view.close()
        self.store.close()
        if self._parent is None:
            self._background.shutdown(wait=False, cancel_futures=True)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._repo_pool.shutdown(wait=False, cancel_futures=True)
            self.cache.close()

    # -- fan-out ---------------------------------------------------------------------------------

    def _map(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        values = list(items)
        if len(values) <= 1:
            return [func(v) for v in values]
        return list(self._pool.map(func, values))

    # -- snapshots ---------------------------------------------------------------------------------

    def _ref(self, repository: str) -> Reference:
        return Reference(self.config.registry, repository)

    def repositories(self) -> tuple[str, ...]:
        """The repositories under the namespace; a list older than ``refresh`` is read again in the
        background (served as it is meanwhile), or at once when ``refresh`` is 0."""
        checked, names = self._listed
        age = time.monotonic() - checked
        if checked and age < self.config.refresh:
            return names
        if checked and self.config.refresh > 0:
            self._in_background(None)
            return names
        return self._list_repositories()

    def _list_repositories(self) -> tuple[str, ...]:
        found = {r for r in _ops.repositories(self.store) if r.startswith(self.config.prefix)}
        found |= {self.config.repository(name).repository for name in self.config.models}
        found |= set(self._repos)  # opened by name since: the registry's catalog may not list them
        listed = tuple(sorted(found))
        self._listed = (time.monotonic(), listed)
        return listed

    def _in_background(self, repositories: list[str] | None) -> None:
        """Refresh the repository list (None) or ``repositories`` on the background thread, once at a time."""
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def run() -> None:
            try:
                if repositories is None:
                    self._refresh(list(self._list_repositories()), prepare=True)
                else:
                    self._refresh(repositories, prepare=True)
            except Exception:
                log.warning("background refresh failed", exc_info=True)
            finally:
                with self._lock:
                    self._refreshing = False

        self._background.submit(run)

    def info(self, digest: Digest, repository: str) -> _Info:
        found = self._infos.get(digest)
        if found is None:
            descriptor, data = self.store.fetch_manifest(self._ref(repository).with_digest(digest))
            found = _parse_info(descriptor, data)
            with self._lock:
                self._infos[digest] = found
        return found

    def _resolve(self, repository: str, tag: str) -> Digest | None:
        try:
            return self.store.resolve(self._ref(repository).with_tag(tag)).digest
        except NotFoundError:
            return None  # deleted since the tag list was read

    def _refresh_repo(self, repository: str) -> _Repo | None:
        try:
            all_tags = self.store.list_tags(repository)
        except NotFoundError:
            return None
        except AuthError:
            if self._parent is None:  # the server's own reads: a refusal is an error
                raise
            return None  # a caller's view: a repository these credentials may not read is not shown
        visible = [t for t in all_tags if not _ops.is_internal_tag(t)]
        records = sorted(
            (t for t in all_tags if t.startswith(_ops.RECORD_TAG_PREFIX)), key=_record_time, reverse=True
        )
        digests = self._map(lambda t: self._resolve(repository, t), visible)
        tags = {t: d for t, d in zip(visible, digests, strict=True) if d is not None}
        self._map(lambda d: self.info(d, repository), set(tags.values()))
        return _Repo(repository, tags, frozenset(all_tags), tuple(records), time.monotonic())

    def _records(self, repo: _Repo, *, newest_only: bool = False) -> tuple[Promotion, ...]:
        """The promotion records of ``repo``, newest first; read when first asked for (the models
        list needs only the newest, which the tag names tell without reading the others)."""
        memo = self._history.get(repo.repository)
        if memo is not None and memo[0] is repo and (memo[1] or newest_only):
            return memo[2][:1] if newest_only else memo[2]
        wanted = repo.record_tags[:1] if newest_only else repo.record_tags
        ref = self._ref(repo.repository)
        entries = [
            e for e in self._map(lambda t: _ops.read_record(self.store, ref, t), wanted) if e is not None
        ]
        if newest_only and not entries and len(repo.record_tags) > 1:
            return self._records(repo)  # the newest tag held no valid record: read them all
        promotions = self._promotions(entries, repo.tags)
        with self._lock:
            self._history[repo.repository] = (repo, not newest_only, promotions)
        return promotions

    def _promotions(self, entries: list[_ops.HistoryEntry], tags: dict[str, Digest]) -> tuple[Promotion, ...]:
        by_digest: dict[Digest, list[str]] = {}
        for tag, digest in tags.items():
            by_digest.setdefault(digest, []).append(tag)

        def version(digest: Digest | None) -> str | None:
            if digest is None:
                return None
            info = self._infos.get(digest)
            return _version_of(info, by_digest.get(digest, [])) if info else None

        result = []
        for entry in sorted(entries, key=lambda e: e.record.timestamp, reverse=True):
            record = entry.record
            result.append(
                Promotion(
                    environment=record.environment,
                    alias=record.alias,
                    digest=str(record.digest),
                    previous=str(record.previous) if record.previous else None,
                    version=version(record.digest),
                    previous_version=version(record.previous),
                    actor=record.actor,
                    timestamp=record.timestamp.isoformat().replace("+00:00", "Z"),
                    reason=record.reason,
                    ci_run_url=record.ci_run_url,
                    rollback_of=str(record.rollback_of) if record.rollback_of else None,
                    record=str(entry.manifest),
                )
            )
        return tuple(result)

    def _snapshots(self, repositories: Iterable[str]) -> dict[str, _Repo]:
        """Snapshots of ``repositories``: unknown ones are read now; stale ones are read again in the
        background (or now, when ``refresh`` is 0) while the last snapshot is served."""
        wanted = list(repositories)
        now = time.monotonic()
        missing = [r for r in wanted if r not in self._repos]
        stale = [
            r for r in wanted if r in self._repos and now - self._repos[r].checked >= self.config.refresh
        ]
        if self.config.refresh <= 0:
            missing, stale = missing + stale, []
        if missing:
            self._refresh(missing)
        if stale:
            self._in_background(stale)
        return {r: self._repos[r] for r in wanted if r in self._repos}

    def _refresh(self, repositories: list[str], *, prepare: bool = False) -> None:
        with self._refresh_lock:
            now = time.monotonic()
            todo = [
                r
                for r in repositories
                if r not in self._repos or now - self._repos[r].checked >= self.config.refresh
            ]
            if not todo:
                return
            # One repository at a time fans out its tags; many at once fan out by repository.
            refreshed = (
                [self._refresh_repo(todo[0])]
                if len(todo) == 1
                else list(self._outer().map(self._refresh_repo, todo))
            )
            rows: dict[str, ModelSummary | None] = {}
            details: dict[str, ModelDetail] = {}
            if prepare:
                # Work out the pages before the new snapshots are shown, so that no request waits
                # for it (it may read attachments from the registry).
                for repo in refreshed:
                    if repo is None:
                        continue
                    rows[repo.repository] = self._row(repo)
                    if repo.repository in self._details and rows[repo.repository] is not None:
                        details[repo.repository] = self._model_detail(repo)
            with self._lock:
                for name, repo in zip(todo, refreshed, strict=True):
                    if repo is None:
                        self._repos.pop(name, None)
                        continue
                    self._repos[name] = repo
                    if name in rows:
                        self._rows[name] = (repo, rows[name])
                    if name in details:
                        self._details[name] = (repo, details[name])

    def _outer(self) -> ThreadPoolExecutor:
        return self._repo_pool

    def _kind_of_repo(self, repo: _Repo) -> str | None:
        kinds = {self._infos[d].kind for d in repo.tags.values() if d in self._infos}
        if mediatype.MODEL_ARTIFACT in kinds:
            return "model"
        if _ops.PYTHON_PACKAGE_TYPE in kinds:
            return "package"
        if any(
            _ops.MODEL_DIGEST in self._infos[d].annotations for d in repo.tags.values() if d in self._infos
        ):
            return "image"
        return None

    # -- versions ----------------------------------------------------------------------------------

    def _bundle(self, info: _Info, repository: str) -> dict[str, Any] | None:
        if info.digest in self._bundles:
            return self._bundles[info.digest]
        bundle = None
        if info.bundle_layer is not None:
            try:
                bundle = _ops.small_json(self.store, repository, info.bundle_layer)
            except (IntegrityError, NotFoundError, RegistryError):
                bundle = None
        with self._lock:
            self._bundles[info.digest] = bundle
        return bundle

    def _referrer_tree(self, repo: _Repo, digest: Digest) -> tuple[Referrer, ...]:
        cached = self._referrers.get(digest)
        if cached is not None and cached[0] >= repo.checked:
            return cached[1]
        ref = self._ref(repo.repository)

        def children(subject: Digest, depth: int, seen: frozenset[Digest]) -> list[Referrer]:
            if depth >= _MAX_REFERRER_DEPTH:
                return []
            try:
                # The referrers API where there is one (a store remembers when there is none) …
                found = self.store.referrers(repo.repository, subject)
                if found is None:
                    # … else the fallback tag's index: no tag, no request.
                    if _ops.fallback_tag(subject) not in repo.all_tags:
                        return []
                    found = _ops.list_referrers(self.store, ref, subject)
            except NotFoundError:
                return []
            nodes = []
            for d in sorted(found, key=lambda d: ((d.annotations or {}).get(ann.CREATED, ""), str(d.digest))):
                if d.digest in seen:
                    continue
                notes = dict(d.annotations or {})
                nodes.append(
                    Referrer(
                        digest=str(d.digest),
                        artifact_type=d.artifact_type,
                        kind=_ops.kind_of(d.artifact_type, d.annotations),
                        media_type=d.media_type,
                        size=d.size,
                        created=notes.get(ann.CREATED),
                        annotations=notes,
                        referrers=children(d.digest, depth + 1, seen | {d.digest}),
                    )
                )
            return nodes

        tree = tuple(children(digest, 0, frozenset({digest})))
        with self._lock:
            self._referrers[digest] = (time.monotonic(), tree)
        return tree

    def _cosign(self, repo: _Repo, digest: Digest) -> list[str]:
        base = f"{digest.algorithm}-{digest.encoded}"
        return [base + suffix for suffix in _ops.COSIGN_TAGS if base + suffix in repo.all_tags]

    def _badges(self, repo: _Repo, digest: Digest) -> tuple[Badges, int]:
        tree = self._referrer_tree(repo, digest)
        kinds: list[str] = []
        stack = list(tree)
        while stack:
            node = stack.pop()
            kinds.append(node.kind or "")
            stack.extend(node.referrers)
        cosign = self._cosign(repo, digest)
        badges = Badges(
            signed=any(t.endswith(".sig") for t in cosign) or any(k.startswith("signature") for k in kinds),
            sbom=any(t.endswith(".sbom") for t in cosign) or any(k.startswith("sbom") for k in kinds),
            provenance=any(k.startswith("attestation") for k in kinds)
            or any(t.endswith(".att") for t in cosign),
            tests=any(k.startswith(("test results", "evaluation")) for k in kinds),
        )
        attachments = sum(1 for n in tree if n.kind != "promotion record") + len(cosign)
        return badges, attachments

    def _summaries(self, repo: _Repo, *, badges: bool) -> list[VersionSummary]:
        by_digest: dict[Digest, list[str]] = {}
        for tag, digest in repo.tags.items():
            by_digest.setdefault(digest, []).append(tag)
        digests = [
            d for d in by_digest if d in self._infos and self._infos[d].kind == mediatype.MODEL_ARTIFACT
        ]
        marks = (
            dict(zip(digests, self._map(lambda d: self._badges(repo, d), digests), strict=True))
            if badges
            else {}
        )
        result = []
        for digest in digests:
            info = self._infos[digest]
            tags = sorted(by_digest[digest])
            result.append(_summary(info, tags, *marks.get(digest, (Badges(), 0))))
        result.sort(key=lambda v: (sort_key(v.version or ""), v.created or ""), reverse=True)
        return result

    def _environments(self, repo: _Repo, versions: list[VersionSummary]) -> list[EnvironmentTarget]:
        """What each environment points at: the configured ones in order, else every alias found."""
        version_of = {v.digest: v.version for v in versions}
        here = str(self._ref(repo.repository))
        if not self.config.environments:
            return [
                EnvironmentTarget(
                    name=tag, alias=tag, repository=here, version=version_of.get(str(d)), digest=str(d)
                )
                for tag, d in sorted(repo.tags.items())
                if not is_version_tag(tag)
            ]
        targets = []
        for env in self.config.environments:
            where = self._home(env, repo)
            found = repo if where == repo.repository else (self._aside_repo(where) if where else None)
            digest = found.tags.get(env.tag) if found else None
            version = None
            if digest is not None and found is not None:
                version = version_of.get(str(digest))
                info = self._infos.get(digest)
                if version is None and info is not None:
                    version = _version_of(info, [t for t, d in found.tags.items() if d == digest])
            targets.append(
                EnvironmentTarget(
                    name=env.name,
                    alias=env.tag,
                    repository=str(self._ref(where)) if where else env.repository,
                    version=version,
                    digest=str(digest) if digest else None,
                    configured=True,
                    policy=Path(env.policy).name if env.policy else None,
                )
            )
        return targets

    def _home(self, env: Environment, repo: _Repo) -> str | None:
        """The repository ``env``'s alias for the model in ``repo`` lives in (None: another registry).

        The model the configuration describes keeps each environment in that environment's own
        repository; any other model is promoted in place (its aliases in its own repository)."""
        placed = {e.reference.repository for e in self.config.environments if self._ours(e)}
        if repo.repository not in placed:
            return repo.repository
        return env.reference.repository if self._ours(env) else None

    def _all_records(self, repo: _Repo) -> list[Promotion]:
        """The model's promotion records, with those of its environments in other repositories."""
        if not self.config.environments:
            return list(self._records(repo))
        records = {p.record: p for p in [*self._records(repo), *self._history_elsewhere(repo)]}
        return sorted(records.values(), key=lambda p: p.timestamp, reverse=True)

    def _history_elsewhere(self, repo: _Repo) -> list[Promotion]:
        """Promotion records of configured environments whose repository is not the model's own."""
        found: list[Promotion] = []
        for env in self.config.environments:
            where = self._home(env, repo)
            aside = self._aside_repo(where) if where and where != repo.repository else None
            if aside is not None:
                found += [
                    p
                    for p in self._records(aside)
                    if p.environment in (env.name, env.tag) or p.alias == env.tag
                ]
        return found

    def _ours(self, env: Environment) -> bool:
        """Whether ``env``'s repository is in the registry this catalog reads."""
        return env.reference.registry == self.config.registry

    def _aside_repo(self, repository: str) -> _Repo | None:
        """A snapshot of another repository an environment lives in (None: absent or unreadable)."""
        found = self._repos.get(repository) or self._aside.get(repository)
        if found is not None and time.monotonic() - found.checked < max(self.config.refresh, 0.5):
            return found
        try:
            fresh = self._refresh_repo(repository)
        except AuthError:
            fresh = None
        with self._lock:
            if fresh is None:
                self._aside.pop(repository, None)
            else:
                self._aside[repository] = fresh
        return fresh

    def _model_summary(
        self,
        repo: _Repo,
        versions: list[VersionSummary],
        targets: list[EnvironmentTarget] | None = None,
    ) -> ModelSummary:
        latest = next((v for v in versions if v.tags), versions[0] if versions else None)
        if latest is not None and latest.badges == Badges():
            badge, attachments = self._badges(repo, Digest.parse(latest.digest))
            latest = latest.model_copy(update={"badges": badge, "attachments": attachments})
        info = self._infos.get(Digest.parse(latest.digest)) if latest else None
        bundle = self._bundle(info, repo.repository) if info else None
        bundle = bundle or {}
        environments: dict[str, str | None]
        if targets is None and not self.config.environments:
            # The models list's path (every row, every refresh): no EnvironmentTarget objects.
            version_of = {v.digest: v.version for v in versions}
            environments = {
                tag: version_of.get(str(d)) or str(d)
                for tag, d in sorted(repo.tags.items())
                if not is_version_tag(tag)
            }
        else:
            targets = self._environments(repo, versions) if targets is None else targets
            environments = {t.name: t.version or t.digest for t in targets}
        owners = (bundle.get("governance") or {}).get("owners") or []
        return ModelSummary(
            name=self.config.name_of(repo.repository),
            repository=str(self._ref(repo.repository)),
            description=bundle.get("description")
            or (info.annotations.get(ann.DESCRIPTION) if info else None),
            framework=latest.framework if latest else None,
            license=bundle.get("license") or (info.annotations.get(ann.LICENSES) if info else None),
            owners=[str(o) for o in owners],
            features=[str(f) for f in bundle.get("features") or []],
            latest=latest,
            versions=len(versions),
            environments=environments,
            last_promotion=next(iter(self._records(repo, newest_only=True)), None),
        )

    # -- public reads --------------------------------------------------------------------------------

    def models(self, query: Query | None = None, *, page: int = 1, limit: int = 50) -> ModelPage:
        """The models, filtered by ``query``, one page of them (a caller's view lists only what the
        registry lets the caller read: see :meth:`as_caller`)."""
        if page < 1 or not 1 <= limit <= 500:
            raise UsageError("page must be ≥ 1 and limit between 1 and 500")
        query = query or Query()
        snapshots = self._snapshots(self.repositories())
        summaries = []
        found: set[str] = set()
        for repo in snapshots.values():
            summary = self._listed_summary(repo)
            if summary is not None:
                found.update(summary.environments)
                if query.matches(summary):
                    summaries.append((repo.repository, summary))
        start = (page - 1) * limit
        return ModelPage(
            models=[summary for _, summary in summaries[start : start + limit]],
            total=len(summaries),
            page=page,
            limit=limit,
            query=query.text,
            environments=[e.name for e in self.config.environments] or sorted(found),
        )

    def _repo(self, name: str) -> _Repo:
        repository = self.config.repository(name).repository
        found = self._snapshots([repository]).get(repository)
        if found is None or self._kind_of_repo(found) != "model":
            raise NotFoundError(f"no model named {name!r}")
        return found

    def _listed_summary(self, repo: _Repo) -> ModelSummary | None:
        """The models-list row of ``repo`` (None: not a model), computed once per snapshot."""
        memo = self._rows.get(repo.repository)
        if memo is not None and memo[0] is repo:
            return memo[1]
        summary = self._row(repo)
        with self._lock:
            self._rows[repo.repository] = (repo, summary)
        return summary

    def _row(self, repo: _Repo) -> ModelSummary | None:
        if self._kind_of_repo(repo) != "model":
            return None
        return self._model_summary(repo, self._summaries(repo, badges=False))

    def model(self, name: str) -> ModelDetail:
        repo = self._repo(name)
        memo = self._details.get(repo.repository)
        if memo is not None and memo[0] is repo:
            return memo[1]
        detail = self._model_detail(repo)
        with self._lock:
            self._details[repo.repository] = (repo, detail)
        return detail

    def _model_detail(self, repo: _Repo) -> ModelDetail:
        versions = self._summaries(repo, badges=True)
        targets = self._environments(repo, versions)
        summary = self._model_summary(repo, versions, targets)
        info = self._infos.get(Digest.parse(summary.latest.digest)) if summary.latest else None
        bundle = (self._bundle(info, repo.repository) if info else None) or {}
        notes = info.annotations if info else {}
        card = ModelCard(
            description=summary.description,
            intended_use=bundle.get("intended_use"),
            notes=bundle.get("notes"),
            features=summary.features,
            inputs=list(bundle.get("inputs") or []),
            outputs=list(bundle.get("outputs") or []),
            runtime=bundle.get("runtime"),
            dependencies=bundle.get("dependencies"),
            governance=bundle.get("governance"),
            lineage=bundle.get("lineage"),
            hardware=list(bundle.get("hardware") or []),
            authors=[str(a) for a in bundle.get("authors") or []]
            or ([notes[ann.AUTHORS]] if notes.get(ann.AUTHORS) else []),
            license=summary.license,
            framework=bundle.get("framework") or summary.framework,
            source=notes.get(ann.SOURCE),
        )
        return ModelDetail(
            model=summary,
            card=card,
            versions=versions,
            history=self._all_records(repo),
            environments=targets,
        )

    def history(self, name: str, environment: str | None = None) -> list[Promotion]:
        repo = self._repo(name)
        records = self._all_records(repo)
        if environment is None:
            return records
        # A configured environment's records may carry its alias's name (promoted as `--to prod`).
        aliases = {e.tag for e in self.config.environments if e.name == environment}
        return [r for r in records if r.environment == environment or r.alias in aliases]

    def _find(self, repo: _Repo, ref: str) -> Digest:
        if ref.startswith(("sha256:", "sha512:")):
            digest = Digest.parse(ref)
            if digest in repo.tags.values() or self.holds(repo.repository, digest):
                return digest
            raise NotFoundError(f"no version {ref} of {self.config.name_of(repo.repository)}")
        found = repo.tags.get(ref) or repo.tags.get(ref.replace("+", "_"))
        if found is None:
            raise NotFoundError(f"no version {ref!r} of {self.config.name_of(repo.repository)}")
        return found

    def holds(self, repository: str, digest: Digest) -> bool:
        """Whether the registry (asked with this catalog's credentials, never the shared cache)
        has the manifest ``digest`` in ``repository``: the cache holds content by digest from every
        repository and every caller, so a digest named in a request is checked before it is shown."""
        if (repository, digest) in self._held:
            return True
        try:
            self._direct.resolve(self._ref(repository).with_digest(digest))
        except NotFoundError:
            return False
        except AuthError:
            if self._parent is None:  # the server's own reads: a refusal is an error
                raise
            return False
        with self._lock:
            self._held.add((repository, digest))
        return True

    def version(self, name: str, ref: str) -> VersionDetail:
        repo = self._repo(name)
        digest = self._find(repo, ref)
        info = self.info(digest, repo.repository)
        tags = sorted(t for t, d in repo.tags.items() if d == digest)
        summary = _summary(info, tags, *self._badges(repo, digest))
        bundle = self._bundle(info, repo.repository)
        lineage = (bundle or {}).get("lineage") or {}
        pinned = self._ref(repo.repository).with_digest(digest)
        return VersionDetail(
            name=self.config.name_of(repo.repository),
            repository=str(self._ref(repo.repository)),
            reference=str(pinned),
            summary=summary,
            media_type=info.media_type,
            artifact_type=info.raw.get("artifactType"),
            annotations=info.annotations,
            bundle=bundle,
            files=[
                FileEntry.model_validate(f) for f in _ops.list_files(self.store, repo.repository, info.layers)
            ],
            referrers=self._verify_tree(repo, digest, self._referrer_tree(repo, digest)),
            cosign=self._cosign(repo, digest),
            signatures=self._signatures(repo, digest),
            lineage=Lineage(
                datasets=[d for d in lineage.get("datasets") or [] if isinstance(d, dict)],
                training_run=lineage.get("training_run"),
                parent_model=lineage.get("parent_model"),
                **self._parent_model(lineage.get("parent_model")),
                images=self._images(digest),
            ),
            pull=f"mloci pull {pinned}",
        )

    def _signatures(self, repo: _Repo, digest: Digest) -> list[SignatureCheck]:
        config = self.config
        identity = (
            (config.verify_identity, config.verify_issuer)
            if config.verify_identity and config.verify_issuer
            else None
        )
        if not config.verify_keys and identity is None:
            return []
        tag = f"{digest.algorithm}-{digest.encoded}.sig"
        key = (digest, tag in repo.all_tags, repo.checked)
        cached = self._verified.get(digest)
        if cached is not None and cached[0] == key:
            return cached[1]
        reference = self._ref(repo.repository).with_digest(digest)
        checks = []
        for path in config.verify_keys:
            ok, detail = _ops.verify_signature(
                reference,
                path,
                config.options,
                trusted_root=config.trusted_root,
                credentials=self.credentials,
            )
            checks.append(SignatureCheck(key=path.name, verified=ok, detail=detail))
        if identity is not None:
            ok, detail = _ops.verify_signature(
                reference,
                None,
                config.options,
                identity=identity,
                trusted_root=config.trusted_root,
                credentials=self.credentials,
            )
            checks.append(
                SignatureCheck(key=f"{identity[0]} (issuer {identity[1]})", verified=ok, detail=detail)
            )
        with self._lock:
            self._verified[digest] = (key, checks)
        return checks

    def _trust_rules(self) -> list[TrustRule]:
        if self._rules is None:
            config = self.config
            self._rules = _ops.trust_rules(
                config.verify_keys, config.verify_identity, config.verify_issuer, config.trusted_root
            )
        return self._rules

    def _verify_tree(self, repo: _Repo, subject: Digest, tree: Sequence[Referrer]) -> list[Referrer]:
        """``tree`` with each signature and attestation checked against the trust rules (none: as is).

        A referrer's bytes never change, so each outcome is kept for the life of the server."""
        if not (self.config.verify_keys or self.config.verify_identity or self.config.verify_issuer):
            return list(tree)
        rules = self._trust_rules()
        todo: list[tuple[Digest, Referrer]] = []

        def walk(parent: Digest, nodes: Sequence[Referrer]) -> None:
            for node in nodes:
                todo.append((parent, node))
                walk(Digest.parse(node.digest), node.referrers)

        walk(subject, tree)
        ref = self._ref(repo.repository)

        def check(item: tuple[Digest, Referrer]) -> tuple[tuple[Digest, Digest], Verification | None]:
            parent, node = item
            key = (parent, Digest.parse(node.digest))
            known = self._checks.get(key)
            if known is not None:
                return key, known
            entry = Descriptor(
                media_type=node.media_type,
                digest=key[1],
                size=node.size,
                artifact_type=node.artifact_type,
                annotations=node.annotations or None,
            )
            if not _ops.checkable(entry):
                return key, None
            try:
                result = _ops.check_referrer(self.store, ref, parent, entry, rules)
            except (UsageError, UnsupportedError, IntegrityError) as exc:
                # The server's own trust setup (a trusted root, the sigstore extra): shown, not kept.
                return key, Verification(verified=False, detail=str(exc))
            outcome = Verification(
                verified=result.verified,
                detail=result.detail,
                rule=result.rule,
                signer=result.signer,
                predicate_type=result.predicate_type,
            )
            with self._lock:
                self._checks[key] = outcome
            return key, outcome

        outcomes = dict(self._map(check, todo))

        def rebuild(parent: Digest, nodes: Sequence[Referrer]) -> list[Referrer]:
            return [
                node.model_copy(
                    update={
                        "verification": outcomes.get((parent, Digest.parse(node.digest))),
                        "referrers": rebuild(Digest.parse(node.digest), node.referrers),
                    }
                )
                for node in nodes
            ]

        return rebuild(subject, tree)

    def _parent_model(self, text: object) -> dict[str, str]:
        """The parent model's name and version in this catalog, when ``text`` names one there."""
        if not isinstance(text, str):
            return {}
        try:
            ref = Reference.parse(text.strip())
        except (ValueError, MlociError):
            return {}
        version = str(ref.digest) if ref.digest else ref.tag
        if ref.registry != self.config.registry or not version:
            return {}
        if not ref.repository.startswith(self.config.prefix):
            return {}
        return {"parent_name": self.config.name_of(ref.repository), "parent_version": version}

    def _images(self, model: Digest) -> list[Image]:
        """Inference images built from ``model``, among the repositories of the namespace."""
        wanted = str(model)
        found = []
        for repo in self._snapshots(self.repositories()).values():
            by_digest: dict[Digest, list[str]] = {}
            for tag, digest in repo.tags.items():
                info = self._infos.get(digest)
                if info is not None and info.annotations.get(_ops.MODEL_DIGEST) == wanted:
                    by_digest.setdefault(digest, []).append(tag)
            found += [
                Image(repository=str(self._ref(repo.repository)), digest=str(d), tags=sorted(t))
                for d, t in by_digest.items()
            ]
        return found

    def _pinned(self, text: str) -> Reference:
        name, digest_or_tag = _split_ref(text)
        repo = self._repo(name)
        return self._ref(repo.repository).with_digest(self._find(repo, digest_or_tag))

    def compare(self, left: str, right: str) -> Comparison:
        """Two versions side by side (``name:version`` or ``name@sha256:…`` each)."""
        a, b = self._map(self._pinned, [left, right])
        document = _ops.compare(self.store, a, b)
        return Comparison(
            left=document["left"],
            right=document["right"],
            identical=document["identical"],
            metadata={k: Change.model_validate(v) for k, v in document["metadata"].items()},
            metrics={k: Change.model_validate(v) for k, v in document["metrics"].items()},
            dependencies={k: Change.model_validate(v) for k, v in document["dependencies"].items()},
            files={k: Change.model_validate(v) for k, v in document["files"].items()},
            unchanged_files=document["unchangedFiles"],
        )

    def packages(self) -> list[Package]:
        snapshots = self._snapshots(self.repositories())
        repos = [r for r in snapshots.values() if self._kind_of_repo(r) == "package"]

        def package(repo: _Repo) -> Package:
            try:
                releases = _ops.list_releases(self.store, self._ref(repo.repository))
            except MlociError:
                releases = []
            return Package(
                name=releases[-1].project if releases else self.config.name_of(repo.repository),
                repository=str(self._ref(repo.repository)),
                releases=[
                    PackageRelease(
                        version=r.version,
                        yanked=r.yanked is not None,
                        yanked_reason=r.yanked or None,
                        files=[
                            PackageFile(filename=f.filename, size=f.layer.size, digest=str(f.layer.digest))
                            for f in r.files
                        ],
                    )
                    for r in reversed(releases)
                ],
            )

        return self._map(package, repos)


_RECORD_TIME = re.compile(r"-(\d{8}T\d{6,12}Z)-[0-9a-f]+$")


def credentials_key(creds: Credentials) -> str:
    """A key for ``creds`` that holds no secret (a hash of all of their parts)."""
    text = f"{creds.username}\0{creds.password}\0{creds.identity_token}"
    return hashlib.sha256(text.encode()).hexdigest()


def _record_time(tag: str) -> str:
    """The UTC time a promotion-record tag was written (``…-<YYYYmmddTHHMMSSffffffZ>-<random>``)."""
    match = _RECORD_TIME.search(tag)
    return match[1] if match else ""


def _split_ref(text: str) -> tuple[str, str]:
    """``name:version`` or ``name@sha256:…`` → (name, version-or-digest)."""
    text = text.strip()
    if "@" in text:
        name, _, digest = text.partition("@")
        return name, digest
    name, sep, tag = text.rpartition(":")
    if not sep or not name or "/" in tag:
        raise UsageError(f"{text!r} names no version", hint="use NAME:VERSION or NAME@sha256:…")
    return name, tag
