"""The package index as an ASGI application (Starlette), and :func:`serve` to run it with uvicorn.

Registry I/O is blocking, so handlers are plain functions that Starlette runs in its thread pool;
downloads are generators iterated there too, one verified chunk at a time, so a file is never
held whole in memory nor copied to disk. Uploads are parsed by Starlette's multipart parser, which
spools each file (in memory up to 1 MiB, else in a temporary file) so it can be checked before
anything reaches the registry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import importlib.util
import io
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, BinaryIO, Final
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mloci.errors import (
    AuthError,
    ConflictError,
    IntegrityError,
    MlociError,
    NotFoundError,
    TimedOutError,
    UnavailableError,
    UsageError,
)
from mloci.ops.sign import bundle_referrers, fetch_bundle
from mloci.ops.wheel import (
    ReleasePushResult,
    list_projects,
    list_releases,
    project_repository,
    publish,
    read_release,
)
from mloci.pyindex import attestations, negotiation, pages, provenance
from mloci.pyindex.cache import Spool, UpstreamCache
from mloci.pyindex.upstream import Upstream, UpstreamError, UpstreamProject, versions_of
from mloci.python.artifact import Release
from mloci.python.distribution import hash_stream, read_upload
from mloci.python.filenames import is_project_name, normalize_name, parse_version
from mloci.store import RegistryStore, StoreOptions, open_registry
from mloci.store.registry.auth import Credentials
from mloci.trust import Rejected
from mloci.trust.bundle import PREDICATE_ANNOTATION
from mloci.types.manifest import Descriptor
from mloci.types.reference import Reference

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger("mloci.pyindex")

_REALM: Final = 'Basic realm="mloci index", charset="UTF-8"'
_MAX_CLIENT_STORES: Final = 64
# Chunks (1 MiB) each download reads ahead of its client: memory is downloads x this, not x 8.
_READ_AHEAD: Final = 1
_MAX_FORM_FIELDS: Final = 1000
_MAX_FIELD_SIZE: Final = 4 << 20  # long descriptions travel as a form field
_ATTESTED_SECONDS: Final = 30.0  # a newly attached attestation shows on pages within this
_MAX_ATTESTED: Final = 4096
_UPLOAD_DIGESTS: Final = (
    ("sha256_digest", "sha256"),
    ("blake2_256_digest", "blake2_256"),
    ("md5_digest", "md5"),
)


@dataclass(frozen=True)
class IndexConfig:
    """What the server serves: the projects under ``namespace`` in ``registry``."""

    registry: str
    namespace: str = ""
    options: StoreOptions = field(default_factory=StoreOptions)
    read_only: bool = False
    # Simple index URLs serving every project the namespace does not hold, asked in this order.
    upstreams: tuple[str, ...] = ()
    upstream_timeout: float = 30.0  # seconds for an upstream page, or between two chunks of a file
    upstream_cache_seconds: float = 60.0  # at most; less when the upstream's Cache-Control says so
    redirect_upstream_files: bool = False  # True: send clients to the upstream's file URLs
    require_auth: bool = False  # refuse requests without credentials (reads too)
    cache_namespace: str | None = None  # keep verified upstream files as releases under this namespace
    upstream_ca_file: str | None = None  # PEM CAs trusted for upstreams, besides the system's

    @property
    def base(self) -> str:
        namespace = self.namespace.strip("/")
        return f"{self.registry}/{namespace}" if namespace else self.registry

    def repository(self, project: str) -> Reference:
        return project_repository(self.base, project)

    def check(self) -> None:
        """UsageError unless ``registry`` is a registry host and ``namespace`` a repository path."""
        probe = Reference.parse(f"{self.registry}/probe")
        if probe.registry != self.registry:
            raise UsageError(
                f"{self.registry!r} is not a registry host",
                hint="give host[:port], e.g. registry.example.com",
            )
        if self.namespace.strip("/"):
            self.repository("probe")
        if self.cache_namespace is not None:
            cache, own = self.cache_namespace.strip("/"), self.namespace.strip("/")
            if not cache or cache == own or cache.startswith(f"{own}/") or own.startswith(f"{cache}/"):
                raise UsageError(
                    f"the upstream cache namespace {self.cache_namespace!r} must lie apart from {self.namespace!r}",
                    hint="cached public projects would otherwise count as private; e.g. --cache-upstream pypi-cache",
                )
            project_repository(f"{self.registry}/{cache}", "probe")
        if self.upstream_timeout <= 0:
            raise UsageError("the upstream timeout must be positive")
        for url in self.upstreams:
            # UsageError for anything but an http(s) URL, or a CA file that is not PEM.
            Upstream(url, ca_file=self.upstream_ca_file).close()


def registry_store(
    config: IndexConfig, creds: Credentials | None, *, server_credentials: bool
) -> RegistryStore:
    """The one place the index opens a registry store: with a client's ``creds``, else the server's
    own credentials when ``server_credentials``, else anonymous (empty credentials)."""
    override = creds if creds is not None else (None if server_credentials else Credentials())
    # Each download holds a connection for its duration: size the pool for many at once.
    store = open_registry(
        config.registry,
        config.options,
        credentials_override=override,
        pool_size=16,
        remember_locations=False,
    )
    store.read_ahead = _READ_AHEAD
    return store


class StorePool:
    """One registry store per set of client credentials, plus the server's own for anonymous clients.

    A client's ``Authorization: Basic`` credentials are used for the registry as they are (Basic,
    or to fetch tokens); clients that send none get the server's credentials (``mloci login``,
    the docker config, ``MLOCI_USERNAME``/``MLOCI_PASSWORD``), if any.
    """

    def __init__(self, config: IndexConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._own: RegistryStore | None = None
        self._anonymous: RegistryStore | None = None
        self._clients: OrderedDict[str, RegistryStore] = OrderedDict()

    def get(self, creds: Credentials | None, *, anonymous: bool = False) -> RegistryStore:
        """The store for a client's ``creds``; without any, the server's own credentials, or none
        at all when ``anonymous`` (uploads never borrow the server's credentials)."""
        with self._lock:
            if creds is None and anonymous:
                if self._anonymous is None:
                    self._anonymous = registry_store(self._config, None, server_credentials=False)
                return self._anonymous
            if creds is None:
                if self._own is None:
                    self._own = registry_store(self._config, None, server_credentials=True)
                return self._own
            key = hashlib.sha256(f"{creds.username}\0{creds.password}".encode()).hexdigest()
            store = self._clients.get(key)
            if store is None:
                store = self._clients[key] = registry_store(self._config, creds, server_credentials=False)
                if len(self._clients) > _MAX_CLIENT_STORES:
                    # Dropped, not closed: a request may still be streaming through it; its
                    # connections close when it is collected.
                    self._clients.popitem(last=False)
            else:
                self._clients.move_to_end(key)
            return store

    def close(self) -> None:
        with self._lock:
            stores = [*self._clients.values(), *(s for s in (self._own, self._anonymous) if s)]
            self._clients.clear()
            self._own = self._anonymous = None
        for store in stores:
            store.close()


def client_credentials(request: Request) -> Credentials | None:
    """The credentials pip, uv or twine sent (Basic, or Bearer with a registry identity token), or None."""
    header = request.headers.get("authorization")
    return Credentials.from_authorization(header) if header else None


def _text(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers=headers)


def error_response(exc: MlociError, *, upload: bool = False) -> Response:
    """The HTTP answer for an mloci error: the one-line message as the body."""
    message = str(exc)
    if isinstance(exc, AuthError):
        return _text(message, 401, {"WWW-Authenticate": _REALM})
    if isinstance(exc, NotFoundError):
        return _text(message, 404)
    if isinstance(exc, ConflictError):
        return _text(message, 409)
    if isinstance(exc, UsageError) or (upload and isinstance(exc, IntegrityError)):
        return _text(message, 400)
    if isinstance(exc, UpstreamError):
        log.warning("upstream failed: %s", message)
        return _text(message, 502)
    if isinstance(exc, UnavailableError):
        log.warning("registry unavailable: %s", message)
        # A registry that took too long is a gateway timeout; one that cannot be reached, unavailable.
        return _text(message, 504 if isinstance(exc, TimedOutError) else 503, {"Retry-After": "5"})
    log.warning("registry error: %s", message)
    return _text(message, 502)


class _Borrowed(io.RawIOBase):
    """A read-only view of a seekable file that leaves it open when closed (an upload is read twice)."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self._inner = inner
        inner.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()


def _reopen(inner: IO[bytes]) -> BinaryIO:
    return io.BufferedReader(_Borrowed(inner), buffer_size=1 << 20)


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


class DownloadAborted(Exception):
    """A download failed after its response started; the server drops the connection."""


def _negotiate(request: Request) -> str | None:
    # A '+' typed into a browser's address bar arrives as a space; media types hold no spaces.
    format_param = request.query_params.get("format")
    return negotiation.choose(
        request.headers.get("accept"), format_param.replace(" ", "+") if format_param else None
    )


def _verified_stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Hold back the last chunk until the whole blob verified.

    The store's iterator raises after its last chunk when the digest does not match; holding that
    chunk back means a client never receives a complete file that failed verification: it sees
    the connection end short of Content-Length instead.
    """
    previous: bytes | None = None
    for chunk in chunks:
        if previous is not None:
            yield previous
        previous = chunk
    if previous is not None:
        yield previous


def _aborting(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """The verified stream of an upstream file; a mismatch or failure ends the connection short."""
    try:
        yield from _verified_stream(chunks)
    except MlociError as exc:
        log.error("download of %s aborted: %s", what, exc)
        raise DownloadAborted(str(exc)) from None


def _teed(chunks: Iterator[bytes], spool: Spool) -> Iterator[bytes]:
    """Write the chunks aside as they are sent; the spool is committed once the whole file verified."""
    complete = False
    try:
        for chunk in chunks:
            spool.write(chunk)
            yield chunk
        complete = True
    finally:
        if complete:
            spool.commit()
        else:
            spool.discard()


def _blob_body(store: RegistryStore, repository: str, descriptor: Descriptor) -> Iterator[bytes]:
    """Start the download now, so a missing blob or refused credentials still get a proper status;
    the body then streams as the response is sent."""
    stack = contextlib.ExitStack()
    chunks = stack.enter_context(store.open_blob(repository, descriptor))

    def body() -> Iterator[bytes]:
        with stack:
            try:
                yield from _verified_stream(chunks)
            except MlociError as exc:
                # Too late for an error status: end the connection short of Content-Length instead.
                log.error("download of %s aborted: %s", descriptor.digest, exc)
                raise DownloadAborted(str(exc)) from None

    return body()


class PackageIndex:
    """The request handlers over one :class:`IndexConfig`."""

    def __init__(self, config: IndexConfig) -> None:
        self.config = config
        self.stores = StorePool(config)
        self.cache = (
            UpstreamCache(
                f"{config.registry}/{config.cache_namespace.strip('/')}",
                lambda: self.stores.get(None),
                concurrency=config.options.concurrency,
            )
            if config.cache_namespace
            else None
        )
        # Which files of a release (by digest) some attached bundle attests, for a short while:
        # a page of many releases would otherwise cost one referrers request per release each time.
        self._attested: OrderedDict[tuple[str, str], tuple[float, frozenset[str]]] = OrderedDict()
        self._attested_lock = threading.Lock()
        self.upstreams = [
            Upstream(
                url,
                timeout=config.upstream_timeout,
                cache_seconds=config.upstream_cache_seconds,
                ca_file=config.upstream_ca_file,
            )
            for url in config.upstreams
        ]

    def store(self, request: Request) -> RegistryStore:
        creds = client_credentials(request)
        if creds is None and self.config.require_auth:
            raise AuthError("this index requires credentials", hint="give pip or uv a user name and token")
        return self.stores.get(creds)

    def close(self) -> None:
        self.stores.close()
        for upstream in self.upstreams:
            upstream.close()
        if self.cache is not None:
            self.cache.close()

    def private_releases(self, store: RegistryStore, name: str) -> list[Release] | None:
        """The releases of ``name`` when the namespace holds (or reserves) it, else None.

        A name the registry holds is private: it is served only from the registry, even with no
        file a client can use. Anything but "no such repository" (refused credentials, an
        unreachable registry) is raised, so it can never fall through to an upstream.
        """
        try:
            return list_releases(store, self.config.repository(name))
        except NotFoundError:
            return None

    def is_private(self, store: RegistryStore, name: str) -> bool:
        """Whether the namespace holds (or reserves) ``name``: one tag listing, no release reads."""
        try:
            store.list_tags(self.config.repository(name).repository)
        except NotFoundError:
            return False
        return True

    def upstream_project(self, name: str) -> UpstreamProject | None:
        """The first upstream's page of ``name`` (an unreachable upstream before it is an error)."""
        for upstream in self.upstreams:
            project = upstream.project(name)
            if project is not None:
                return project
        return None

    # -- simple API ------------------------------------------------------------------------------

    def root(self, request: Request) -> Response:
        return _text("mloci package index: the simple API is at /simple/; uploads go to this URL", 200)

    def project_list(self, request: Request) -> Response:
        chosen = _negotiate(request)
        if chosen is None:
            return _text("406 Not Acceptable: this index serves " + ", ".join(negotiation.OFFERED), 406)
        projects = list_projects(self.store(request), self.config.namespace)
        if self.upstreams:
            merged = set(projects)
            for upstream in self.upstreams:
                merged.update(upstream.project_names())
            projects = sorted(merged)
        if chosen == negotiation.JSON_V1:
            return self._page(pages.project_list_json(projects), chosen)
        return self._page(pages.project_list_html(projects).encode(), chosen)

    def project_page(self, request: Request) -> Response:
        raw = request.path_params["project"]
        if not is_project_name(raw):
            return _text(f"no project named {raw!r}", 404)
        name = normalize_name(raw)
        if name != raw:
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"../{name}/{query}", status_code=301)
        chosen = _negotiate(request)
        if chosen is None:
            return _text("406 Not Acceptable: this index serves " + ", ".join(negotiation.OFFERED), 406)
        store = self.store(request)
        releases = self.private_releases(store, name)
        if releases is None and self.upstreams:
            try:
                project = self.upstream_project(name)
            except UpstreamError as exc:
                cached = self.cache.releases(self.stores.get(None), name) if self.cache else []
                if not cached:
                    raise
                log.warning("serving %s from the upstream cache: %s", name, exc)
                return self._cached_page(name, cached, chosen)
            if project is not None:
                return self._upstream_page(project, chosen)
        if not releases:
            if releases is not None and self.upstreams:
                # Never upstream: a private or reserved name is served from the registry alone.
                return _text(f"{name} is a private project in {self.config.base} with no files", 404)
            return _text(f"no project named {name!r} in {self.config.base}", 404)
        links = self._with_provenance(store, name, releases, pages.links(name, releases))
        if chosen == negotiation.JSON_V1:
            return self._page(pages.project_json(name, releases, links), chosen)
        return self._page(pages.project_html(name, links).encode(), chosen)

    def file_attestations(
        self, store: RegistryStore, project: str, release: Release
    ) -> dict[str, list[provenance.FileAttestation]]:
        """PEP 740 attestations per file name, from the keyless bundles attached to ``release``."""
        repository = self.config.repository(project)
        found: dict[str, list[provenance.FileAttestation]] = {}
        for entry in bundle_referrers(store, repository, release.digest):
            if (entry.annotations or {}).get(PREDICATE_ANNOTATION) not in (None, *provenance.PREDICATE_TYPES):
                continue  # e.g. a signature of the release (cosign/sign/v1): no need to fetch it
            try:
                data = fetch_bundle(store, repository, release.digest, entry)
            except Rejected as exc:
                log.warning("%s %s: %s", project, release.version, exc)
                continue
            for file in release.files:
                made = provenance.attestation_for(data, file.filename, file.sha256) if file.sha256 else None
                if made is not None:
                    found.setdefault(file.filename, []).append(made)
        return found

    def _with_provenance(
        self, store: RegistryStore, project: str, releases: list[Release], links: list[pages.FileLink]
    ) -> list[pages.FileLink]:
        """``links`` with a PEP 740 provenance URL on each file some attached bundle attests."""

        def attested_in(release: Release) -> set[tuple[str, str]]:
            key = (project, str(release.digest))
            now = time.monotonic()
            with self._attested_lock:
                hit = self._attested.get(key)
            if hit is not None and hit[0] > now:
                return {(release.version, name) for name in hit[1]}
            try:
                names = frozenset(self.file_attestations(store, project, release))
            except MlociError as exc:  # provenance is extra: the page still lets clients install
                log.warning("no provenance for %s %s: %s", project, release.version, exc)
                return set()
            with self._attested_lock:
                self._attested[key] = (now + _ATTESTED_SECONDS, names)
                self._attested.move_to_end(key)
                while len(self._attested) > _MAX_ATTESTED:
                    self._attested.popitem(last=False)
            return {(release.version, name) for name in names}

        # One referrers request per release, as many at once as list_releases reads releases.
        if len(releases) <= 1:
            found = [attested_in(release) for release in releases]
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(releases))) as pool:
                found = list(pool.map(attested_in, releases))
        attested: set[tuple[str, str]] = set().union(*found)
        return [
            dataclasses.replace(link, provenance=pages.provenance_url(project, link.version, link.filename))
            if (link.version, link.filename) in attested
            else link
            for link in links
        ]

    def provenance_file(self, request: Request) -> Response:
        """GET /provenance/<project>/<version>/<file>: the PEP 740 provenance object of a registry file."""
        project = request.path_params["project"]
        filename = request.path_params["filename"]
        if not is_project_name(project) or normalize_name(project) != project:
            return _text(f"no project named {project!r}", 404)
        store = self.store(request)
        try:
            version = parse_version(request.path_params["version"])
        except UsageError:
            return _text(f"no version {request.path_params['version']!r} of {project}", 404)
        release = read_release(store, self.config.repository(project), version)
        if release is None or release.file(filename) is None:
            return _text(f"no file {filename} in {project} {version}", 404)
        found = self.file_attestations(store, project, release).get(filename, [])
        if not found:
            return _text(f"no provenance for {filename}: no keyless attestation of it is attached", 404)
        headers = {"Cache-Control": "no-cache"}  # more attestations may be attached
        return Response(provenance.document(found), media_type=provenance.MEDIA_TYPE, headers=headers)

    def _cached_page(self, name: str, releases: list[Release], chosen: str) -> Response:
        links = [
            dataclasses.replace(
                link, url=f"../../upstream/{quote(name, safe='')}/{quote(link.filename, safe='')}"
            )
            for link in pages.links(name, releases)
        ]
        if chosen == negotiation.JSON_V1:
            return self._page(pages.project_json(name, releases, links), chosen)
        return self._page(pages.project_html(name, links).encode(), chosen)

    def _upstream_page(self, project: UpstreamProject, chosen: str) -> Response:
        links = [
            pages.FileLink(
                filename=file.filename,
                version="",
                url=f"../../upstream/{quote(project.name, safe='')}/{quote(file.filename, safe='')}",
                sha256=file.hashes.get("sha256"),
                size=file.size,
                requires_python=file.requires_python,
                metadata_sha256=(file.core_metadata or {}).get("sha256"),
                yanked=file.yanked,
                other_hashes=tuple((k, v) for k, v in file.hashes.items() if k != "sha256"),
                upload_time=file.upload_time,
                provenance=file.provenance,
            )
            for file in project.files
        ]
        if chosen == negotiation.JSON_V1:
            body = pages.project_json(project.name, [], links, versions=versions_of(project))
            return self._page(body, chosen)
        return self._page(pages.project_html(project.name, links).encode(), chosen)

    @staticmethod
    def _page(body: bytes, content_type: str) -> Response:
        media_type = (
            f"{content_type}; charset=utf-8" if content_type == negotiation.TEXT_HTML else content_type
        )
        # Pages change with every upload or yank: clients must revalidate (files themselves never change).
        headers = {"Vary": "Accept", "Cache-Control": "no-cache"}
        return Response(body, media_type=media_type, headers=headers)

    # -- files -----------------------------------------------------------------------------------

    def download(self, request: Request) -> Response:
        project = request.path_params["project"]
        version = request.path_params["version"]
        filename = request.path_params["filename"]
        if not is_project_name(project) or normalize_name(project) != project:
            return _text(f"no project named {project!r}", 404)
        store = self.store(request)
        repository = self.config.repository(project)
        try:
            parsed = parse_version(version)
        except UsageError:
            return _text(f"no version {version!r} of {project}", 404)
        release = read_release(store, repository, parsed)
        is_metadata = filename.endswith(".metadata")
        file = (
            release.file(filename.removesuffix(".metadata") if is_metadata else filename) if release else None
        )
        descriptor = (file.metadata if is_metadata else file.layer) if file else None
        if descriptor is None:
            return _text(f"no file {filename} in {project} {version}", 404)
        return self._registry_file(request, store, repository, descriptor, filename)

    @staticmethod
    def _registry_file(
        request: Request, store: RegistryStore, repository: Reference, descriptor: Descriptor, filename: str
    ) -> Response:
        is_metadata = filename.endswith(".metadata")
        headers = {
            "Content-Length": str(descriptor.size),
            "ETag": f'"{descriptor.digest}"',
            # A published file never changes (docs/wheels.md): caches may keep it for good.
            "Cache-Control": "public, max-age=31536000, immutable",
        }
        media_type = "text/plain; charset=utf-8" if is_metadata else "application/octet-stream"
        if not is_metadata:
            headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        if request.method == "HEAD":
            return Response(None, media_type=media_type, headers=headers)
        body = _blob_body(store, repository.repository, descriptor)
        return StreamingResponse(body, media_type=media_type, headers=headers)

    def upstream_download(self, request: Request) -> Response:
        project = request.path_params["project"]
        filename = request.path_params["filename"]
        if not is_project_name(project) or normalize_name(project) != project:
            return _text(f"no project named {project!r}", 404)
        store = self.store(request)
        if self.is_private(store, project):
            return _text(f"{project} is a private project: its files are served only from the registry", 404)
        is_metadata = filename.endswith(".metadata")
        dist_name = filename.removesuffix(".metadata") if is_metadata else filename
        cache = self.cache
        # The cache is the server's: read (as it was written) with the server's credentials.
        own = self.stores.get(None) if cache is not None else store
        cached = cache.file(own, project, dist_name) if cache is not None else None
        cached_descriptor = (cached.metadata if is_metadata else cached.layer) if cached else None
        cache_repository = cache.repository(project) if cache is not None else None

        def from_cache(descriptor: Descriptor, repository: Reference) -> Response:
            return self._registry_file(request, own, repository, descriptor, filename)

        try:
            found = self.upstream_project(project)
        except UpstreamError as exc:
            if cached_descriptor is None or cache_repository is None:
                raise
            # What the cache is for: installs keep working while the upstream is down.
            log.warning("serving %s of %s from the upstream cache: %s", filename, project, exc)
            return from_cache(cached_descriptor, cache_repository)
        file = found.file(dist_name) if found else None
        if found is None or file is None or (is_metadata and file.core_metadata is None):
            # Also when a cached copy exists: a file the upstream withdrew is no longer served.
            return _text(f"no file {filename} in {project} upstream", 404)
        # A cached copy is served only while the page lists the same file (a release layer's digest
        # is its sha256, verified as the registry's bytes stream); else the upstream's is.
        page_sha256 = file.hashes.get("sha256")
        stale = cached is not None and page_sha256 is not None and page_sha256 != cached.sha256
        if cached_descriptor is not None and cache_repository is not None and page_sha256 and not stale:
            page_metadata = (file.core_metadata or {}).get("sha256")
            if not is_metadata or page_metadata in (None, cached_descriptor.digest.encoded):
                return from_cache(cached_descriptor, cache_repository)
        if stale and cached is not None:
            log.warning(
                "%s of %s changed upstream since it was cached (cached sha256 %s, the page now lists %s): "
                "serving the upstream's file; the cached copy stays as it is",
                dist_name,
                project,
                cached.sha256,
                page_sha256,
            )
        url = f"{file.url}.metadata" if is_metadata else file.url
        hashes = (file.core_metadata or {}) if is_metadata else file.hashes
        if self.config.redirect_upstream_files:
            return RedirectResponse(url, status_code=302)
        upstream = next(u for u in self.upstreams if u.display == found.upstream)
        what = f"{filename} of {project}"
        response, chunks = upstream.open(url, hashes, what)
        headers = {"Cache-Control": "public, max-age=31536000, immutable"} if hashes else {}
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and (is_metadata or file.size in (None, int(length))):
            headers["Content-Length"] = length
        if is_metadata:
            media_type = "text/plain; charset=utf-8"
        else:
            media_type = "application/octet-stream"
            headers["Content-Disposition"] = f'attachment; filename="{quote(filename)}"'
        if request.method == "HEAD":
            response.close()  # nothing was read: the connection cannot go back to the pool
            response.release_conn()
            return Response(None, media_type=media_type, headers=headers)
        body = _aborting(chunks, what)
        # A changed file cannot replace the cached one (a release file never changes): not spooled.
        spool = (
            cache.spool(project, filename, dict(hashes), file.upload_time)
            if cache and not is_metadata and not stale
            else None
        )
        return StreamingResponse(
            _teed(body, spool) if spool else body, media_type=media_type, headers=headers
        )

    # -- uploads (the legacy API twine speaks) ---------------------------------------------------

    async def upload(self, request: Request) -> Response:
        if self.config.read_only:
            return _text("this index is read-only", 403)
        if self.config.require_auth and not request.headers.get("authorization"):
            return _text("this index requires credentials", 401, {"WWW-Authenticate": _REALM})
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return _text("uploads are multipart/form-data POSTs with :action=file_upload (use twine)", 400)
        try:
            creds = client_credentials(request)
            async with request.form(
                max_files=1, max_fields=_MAX_FORM_FIELDS, max_part_size=_MAX_FIELD_SIZE
            ) as form:
                action = _field(form, ":action")
                if action != "file_upload":
                    return _text(f"unsupported :action {action!r}; only file_upload is", 400)
                content = form.get("content")
                if not isinstance(content, UploadFile) or not content.filename:
                    return _text("the upload has no 'content' file", 400)
                result = await run_in_threadpool(self._store_upload, creds, form, content)
        except MlociError as exc:
            return error_response(exc, upload=True)
        verb = "already published" if result.unchanged else "published"
        return _text(f"{verb}: {content.filename} in {result.reference}", 200)

    def _store_upload(
        self, creds: Credentials | None, form: FormData, content: UploadFile
    ) -> ReleasePushResult:
        filename = content.filename or ""
        handle = content.file
        hashes = hash_stream(handle)
        for field_name, attribute in _UPLOAD_DIGESTS:
            sent = _field(form, field_name)
            actual = str(getattr(hashes, attribute))
            if sent is not None and sent.lower() != actual:
                raise IntegrityError(
                    f"{filename}: {field_name} {sent} does not match the uploaded bytes ({actual})"
                )
        dist = read_upload(filename, handle, hashes, opener=lambda: _reopen(handle))
        name, version, filetype = _field(form, "name"), _field(form, "version"), _field(form, "filetype")
        if name is not None and (not is_project_name(name) or normalize_name(name) != dist.project):
            raise UsageError(
                f"{filename} is a file of {dist.metadata.name}, but the upload names project {name!r}"
            )
        if version is not None and parse_version(version) != parse_version(dist.version):
            raise UsageError(
                f"{filename} is version {dist.version}, but the upload names version {version!r}"
            )
        if filetype is not None and filetype != dist.kind.value:
            raise UsageError(f"{filename} is a {dist.kind.value}, but the upload says {filetype!r}")
        attested = _field(form, "attestations")
        bundles = attestations.parse_upload(attested, dist.filename, dist.digest.encoded) if attested else []
        store = self.stores.get(creds, anonymous=True)
        repository = self.config.repository(dist.project)
        result = publish(store, repository, [dist], git=None, concurrency=self.config.options.concurrency)
        if bundles:  # PEP 740: kept as referrers (publish carries those of the other files along)
            release = store.resolve(repository.with_digest(result.digest))
            attestations.attach_all(store, repository, release, bundles)
        return result


class _EndAborted:
    """End a download that failed after its response started without a traceback in the log: the
    failure was logged as one line where it happened, and the server closes the connection short
    of Content-Length (uvicorn notes the incomplete response)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except DownloadAborted:
            return


async def _on_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, MlociError):
        return error_response(exc)
    raise exc


def create_app(config: IndexConfig) -> Starlette:
    """The ASGI application serving ``config``; its registry stores close when the app shuts down."""
    config.check()
    if importlib.util.find_spec("python_multipart") is None:
        raise UsageError(
            "the index server needs python-multipart to take uploads", hint="pip install 'mloci[index]'"
        )
    index = PackageIndex(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            index.close()

    routes = [
        Route("/", index.root, methods=["GET"]),
        Route("/", index.upload, methods=["POST"]),
        Route("/legacy/", index.upload, methods=["POST"]),
        Route("/simple/", index.project_list, methods=["GET"]),
        Route("/simple/{project}/", index.project_page, methods=["GET"]),
        Route("/packages/{project}/{version}/{filename}", index.download, methods=["GET"]),
        Route("/upstream/{project}/{filename}", index.upstream_download, methods=["GET"]),
        Route("/provenance/{project}/{version}/{filename}", index.provenance_file, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={MlociError: _on_error},
        lifespan=lifespan,
        middleware=[Middleware(_EndAborted)],
    )
    app.state.index = index
    return app


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening; UsageError naming the address when that fails.

    Binding before uvicorn starts turns "address in use" or an unknown host name into one clear
    line and exit code, instead of uvicorn's log lines and its own exit status.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(
            f"cannot listen on {host!r}: {reason}",
            hint="give --host an address of this machine, e.g. 127.0.0.1",
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        hint = (
            "another process listens there; choose another --port"
            if exc.errno == errno.EADDRINUSE
            else "give --host an address of this machine and --port one you may use"
        )
        raise UsageError(f"cannot listen on {where}: {exc.strerror or exc}", hint=hint) from None
    sock.set_inheritable(True)
    return sock


def serve(config: IndexConfig, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> None:
    """Run the index until interrupted (uvicorn handles SIGINT/SIGTERM with a graceful shutdown)."""
    import uvicorn  # noqa: PLC0415  (only the server needs it)

    app = create_app(config)
    sock = listen(host, port)
    try:
        server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level=log_level, server_header=False)
        )
        server.run(sockets=[sock])
    finally:
        sock.close()
