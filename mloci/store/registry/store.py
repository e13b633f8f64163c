"""A :class:`~mloci.store.Store` over the OCI distribution API (spec v1.1)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import HTTPError

from mloci.errors import (
    AuthError,
    IntegrityError,
    MlociError,
    NotFoundError,
    RegistryError,
    UnavailableError,
    UnsupportedError,
    UsageError,
)
from mloci.store._prefetch import prefetch
from mloci.store.base import MAX_MANIFEST_SIZE, BlobOutcome, Progress, verified, verify_bytes
from mloci.store.registry.auth import Credentials, scope_for
from mloci.store.registry.locations import BlobLocations
from mloci.store.registry.sessions import UploadSessions
from mloci.store.registry.transport import Transport
from mloci.types import jsontext, mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Index, check_manifest
from mloci.types.reference import NO_VERSION_HINT, Reference

_ACCEPT = ", ".join(mediatype.MANIFEST_TYPES)
_CHUNK = 1 << 20


# Statuses with which registries refuse PATCH uploads (GHCR: 416 on large chunks; GAR: no PATCH).
_CHUNKS_REFUSED = frozenset({400, 405, 413, 416, 501})


class _Window:
    """``length`` bytes of a file from ``start``, read in blocks, reporting progress as they go."""

    def __init__(self, handle: BinaryIO, start: int, length: int, progress: Progress | None) -> None:
        handle.seek(start)
        self._handle = handle
        self._left = length
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._handle.read(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        if self._progress and data:
            self._progress(len(data))
        return data


def _discard(response: urllib3.BaseHTTPResponse, count: int) -> None:
    while count > 0:
        data = response.read(min(count, _CHUNK), decode_content=False)
        if not data:
            raise UnavailableError("the registry ended a resumed download early", temporary=True)
        count -= len(data)


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


class StreamUpload:
    """An upload whose digest is supplied only at the end: send the bytes, then finish or abort."""

    def __init__(
        self,
        store: RegistryStore,
        session: str,
        scope: str,
        repository: str,
        *,
        subject: str | None = None,
        offset: int = 0,
    ) -> None:
        self._store = store
        self._session = session
        self._scope = scope
        self._repository = repository
        self._subject = subject
        self._offset = offset  # bytes the registry already holds (a resumed session)
        self._record(session)

    def _record(self, location: str) -> None:
        if self._subject is not None:
            self._store.record_session(self._repository, self._subject, location)

    def send(self, path: Path, size: int, progress: Progress | None) -> None:
        if progress and self._offset:
            progress(self._offset)
        with path.open("rb") as handle:
            self._session = self._store._patch(
                self._session, self._scope, handle, size, self._offset, progress, self._record
            )

    def finish(self, digest: Digest) -> None:
        """Commit under ``digest``; the registry verifies it (IntegrityError when the bytes differ)."""
        done = self._store._finish(self._session, self._scope, digest)
        done.release_conn()
        if self._subject is not None:
            self._store.forget_session(self._repository, self._subject)
        header = done.headers.get("Docker-Content-Digest")
        if header and header != str(digest):
            raise IntegrityError(f"registry stored blob as {header}, expected {digest}")
        self._store.locations.note(self._store.registry, self._repository, digest)

    def abort(self) -> None:
        self._store._cancel_upload(self._session, self._scope)
        if self._subject is not None:
            self._store.forget_session(self._repository, self._subject)


class RegistryStore:
    # 1 MiB chunks a blob download reads ahead of its consumer. A server streaming many downloads
    # at once (the package index) lowers it: memory grows with downloads times this.
    read_ahead: int = 8

    def __init__(
        self,
        registry: str,
        *,
        plain_http: bool | None = None,
        insecure: bool = False,
        ca_file: str | None = None,
        credentials: Credentials | Callable[[], Credentials | None] | None = None,
        concurrency: int = 4,
        chunk_size: int | None = None,
        locations: BlobLocations | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        sessions: UploadSessions | None = None,
    ) -> None:
        self.registry = registry
        self.locations = locations or BlobLocations(None)
        self.sessions = sessions  # upload sessions kept across restarts (None: not kept)
        self.chunk_size = chunk_size
        self._chunk_min = 0
        self._monolithic = False
        self._referrers_api: bool | None = None  # learnt on first use
        self.transport = Transport(
            registry,
            plain_http=plain_http,
            insecure=insecure,
            ca_file=ca_file,
            credentials=credentials,
            concurrency=concurrency,
            timeout=60.0 if timeout is None else timeout,
            max_retries=4 if retries is None else retries,
        )

    @property
    def location(self) -> str:
        return f"registry {self.registry}"

    def ping(self) -> urllib3.BaseHTTPResponse:
        """``GET /v2/``, authenticating if challenged: proves reachability, TLS and credentials."""
        response = self.transport.request("GET", "/v2/", scope="")
        response.release_conn()
        return response

    def _manifest_path(self, ref: Reference) -> str:
        identifier = ref.identifier
        if identifier is None:
            raise UsageError(f"{ref} names no tag or digest", hint=NO_VERSION_HINT)
        return f"/v2/{ref.repository}/manifests/{identifier}"

    def resolve(self, ref: Reference) -> Descriptor:
        response = self.transport.request(
            "HEAD",
            self._manifest_path(ref),
            scope=scope_for(ref.repository, "pull"),
            headers={"Accept": _ACCEPT},
        )
        response.release_conn()
        header = response.headers.get("Docker-Content-Digest")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        length = response.headers.get("Content-Length")
        if header and media_type and length is not None:
            digest = Digest.parse(header)
            if ref.digest is not None and digest != ref.digest:
                raise IntegrityError(f"registry answered {digest} for {ref}")
            return Descriptor(media_type=media_type, digest=digest, size=int(length))
        # Some registries omit headers on HEAD; GET and hash the bytes ourselves.
        descriptor, _ = self.fetch_manifest(ref)
        return descriptor

    def fetch_manifest(self, ref: Reference) -> tuple[Descriptor, bytes]:
        url = self._manifest_path(ref)
        response = self.transport.request(
            "GET", url, scope=scope_for(ref.repository, "pull"), headers={"Accept": _ACCEPT}, stream=True
        )
        try:
            data = response.read(MAX_MANIFEST_SIZE + 1, decode_content=False)
        finally:
            response.drain_conn()
            response.release_conn()
        if len(data) > MAX_MANIFEST_SIZE:
            raise RegistryError(f"manifest for {ref} is larger than {MAX_MANIFEST_SIZE} bytes")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in mediatype.MANIFEST_TYPES:
            with contextlib.suppress(ValueError, AttributeError):
                media_type = jsontext.loads(data).get("mediaType") or media_type
        if ref.digest is not None:
            verify_bytes(data, ref.digest, f"manifest {ref.digest}")
            digest = ref.digest
        else:
            digest = Digest.of(data)
            header = response.headers.get("Docker-Content-Digest")
            if header and header.startswith("sha256:") and header != str(digest):
                raise IntegrityError(
                    f"manifest for {ref} does not match the digest the registry claims ({header})"
                )
        media_type = media_type or mediatype.OCI_MANIFEST
        check_manifest(data, media_type, what=f"{ref} (from {self.location})", error=RegistryError)
        return Descriptor(media_type=media_type, digest=digest, size=len(data)), data

    def push_manifest(self, ref: Reference, data: bytes, media_type: str) -> Descriptor:
        descriptor = Descriptor.of_bytes(media_type, data)
        target = ref.tag or str(ref.digest or descriptor.digest)
        if ref.digest is not None and ref.digest != descriptor.digest:
            raise IntegrityError(f"manifest digest {descriptor.digest} does not match {ref.digest}")
        response = self.transport.request(
            "PUT",
            f"/v2/{ref.repository}/manifests/{target}",
            scope=scope_for(ref.repository, "pull,push"),
            headers={"Content-Type": media_type},
            body=data,
            expect=(200, 201),
        )
        response.release_conn()
        header = response.headers.get("Docker-Content-Digest")
        if header and header != str(descriptor.digest):
            raise IntegrityError(f"registry stored the manifest as {header}, expected {descriptor.digest}")
        return descriptor

    def has_blob(self, repository: str, digest: Digest) -> bool:
        try:
            response = self.transport.request(
                "HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope_for(repository, "pull")
            )
        except NotFoundError:
            return False
        response.release_conn()
        self.locations.note(self.registry, repository, digest)
        return True

    def push_blob(
        self, repository: str, blob: Blob, progress: Progress | None = None, *, mount_from: str | None = None
    ) -> BlobOutcome:
        """Upload ``blob``, resuming from the registry's offset after a dropped connection.

        The default is one streamed PATCH (or ``chunk_size`` PATCHes) then a PUT with the
        digest; a registry that rejects PATCH gets a monolithic PUT instead, remembered for
        the rest of this store's life. With ``mount_from`` the registry is first asked to
        mount the blob from that repository, which transfers nothing.
        """
        descriptor = blob.descriptor
        if mount_from is None:
            for source in self.locations.candidates(self.registry, repository, descriptor.digest):
                if self.mount_blob(repository, descriptor.digest, source):
                    return "mounted"
                self.locations.forget(self.registry, source, descriptor.digest)
        also = [f"repository:{mount_from}:pull"] if mount_from else []
        scope = scope_for(repository, "pull,push", *also)
        subject = str(descriptor.digest)
        # A session an earlier, killed push of this file left (mloci.store.registry.sessions):
        # continue it. Streams (a copy between registries) cannot seek to the offset, so never do.
        keep = mount_from is None and blob.path is not None
        resumed = self.resume_recorded(repository, scope, subject) if keep else None
        if resumed is not None:
            session, offset = resumed
        else:
            started = self._start_upload(repository, scope, descriptor.digest, mount_from)
            if started is None:
                self.locations.note(self.registry, repository, descriptor.digest)
                return "mounted"
            session, offset = started, 0

        def record(location: str) -> None:
            if keep:
                self.record_session(repository, subject, location)

        record(session)
        failures = 0
        with blob.open() as handle:
            if progress and offset:
                progress(offset)  # already with the registry
            try:
                while True:
                    # Decided per attempt: a concurrent upload may switch the store to monolithic.
                    patching = not self._monolithic
                    try:
                        done = self._send(
                            session,
                            scope,
                            handle,
                            descriptor,
                            offset,
                            progress,
                            monolithic=not patching,
                            on_chunk=record,
                        )
                        break
                    except RegistryError as exc:
                        if exc.temporary and failures < self.transport.max_retries:
                            # A 5xx from a proxy mid-PATCH: resume from the registry's offset.
                            failures += 1
                            self.transport.pause(failures, None)
                            session, offset = self._resume_point(repository, scope, session, descriptor)
                            record(session)
                            continue
                        if not patching or exc.status not in _CHUNKS_REFUSED:
                            raise
                        # This registry does not take PATCH uploads: start over, monolithic.
                        self._monolithic = True
                        self._cancel_upload(session, scope)
                        session = self._start_upload(repository, scope, descriptor.digest, None) or session
                        record(session)
                        offset = 0
                    except MlociError as exc:
                        if not exc.temporary or failures >= self.transport.max_retries:
                            raise
                        failures += 1
                        self.transport.pause(failures, None)
                        session, offset = self._resume_point(repository, scope, session, descriptor)
                        record(session)
            except BaseException as exc:
                # Interrupted or failed: tell the registry to drop the half-written upload.
                self._cancel_upload(session, scope)
                self.forget_session(repository, subject)
                if resumed is None or not isinstance(exc, IntegrityError | RegistryError | NotFoundError):
                    raise
                # The resumed session held bytes that were not this blob's, or vanished meanwhile (another
                # push resumed it too, and the registry dropped it): once more, from the start.
                return self.push_blob(repository, blob, progress, mount_from=mount_from)
        self.forget_session(repository, subject)
        header = done.headers.get("Docker-Content-Digest")
        if header and header != str(descriptor.digest):
            raise IntegrityError(f"registry stored blob as {header}, expected {descriptor.digest}")
        self.locations.note(self.registry, repository, descriptor.digest)
        return "uploaded"

    def _start_upload(
        self, repository: str, scope: str, digest: Digest, mount_from: str | None
    ) -> str | None:
        """A new upload session URL, or None when a cross-repository mount made the upload unnecessary."""
        path = f"/v2/{repository}/blobs/uploads/"
        if mount_from:
            path += "?" + urlencode({"mount": str(digest), "from": mount_from})
        start = self.transport.request("POST", path, scope=scope, expect=(202, 201))
        start.release_conn()
        if start.status == 201 and mount_from:
            return None
        location = start.headers.get("Location")
        if start.status != 202 or not location:
            raise RegistryError(f"registry {self.registry} started an upload without a Location header")
        minimum = start.headers.get("OCI-Chunk-Min-Length")
        if minimum and minimum.isdigit():
            self._chunk_min = int(minimum)
        return self.transport.url(location)

    def _send(
        self,
        session: str,
        scope: str,
        handle: BinaryIO,
        descriptor: Descriptor,
        offset: int,
        progress: Progress | None,
        *,
        monolithic: bool = False,
        on_chunk: Callable[[str], None] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        size = descriptor.size
        digest_url = _with_query(session, digest=str(descriptor.digest))
        if monolithic:
            return self.transport.request(
                "PUT",
                digest_url,
                scope=scope,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                body=_Window(handle, 0, size, progress),
                expect=(201, 204),
                retry=False,
            )
        session = self._patch(session, scope, handle, size, offset, progress, on_chunk)
        return self._finish(session, scope, descriptor.digest)

    def _patch(
        self,
        session: str,
        scope: str,
        handle: BinaryIO,
        size: int,
        offset: int,
        progress: Progress | None,
        on_chunk: Callable[[str], None] | None = None,
    ) -> str:
        """Send bytes ``offset..size`` of ``handle`` with PATCH (one request, or ``chunk_size`` ones)."""
        chunk = size - offset
        if self.chunk_size:
            chunk = max(self.chunk_size, self._chunk_min)
        while offset < size:
            length = min(chunk, size - offset)
            patched = self.transport.request(
                "PATCH",
                session,
                scope=scope,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(length),
                    "Content-Range": f"{offset}-{offset + length - 1}",
                },
                body=_Window(handle, offset, length, progress),
                # ECR answers 201 to a chunk; others 202.
                expect=(202, 201, 204),
                retry=False,
            )
            patched.release_conn()
            session = self.transport.url(patched.headers.get("Location") or session)
            offset += length
            if on_chunk is not None:
                on_chunk(session)  # where to continue should this process die now
        return session

    # -- upload sessions kept across process restarts (mloci.store.registry.sessions) ------------

    def record_session(self, repository: str, subject: str, location: str) -> None:
        """Remember ``location`` as the upload of ``subject`` (only URLs on this registry's host)."""
        base = urlsplit(self.transport.url("/"))
        parts = urlsplit(location)
        if self.sessions is not None and (parts.scheme, parts.netloc) == (base.scheme, base.netloc):
            self.sessions.save(self.registry, repository, subject, location)

    def forget_session(self, repository: str, subject: str) -> None:
        if self.sessions is not None:
            self.sessions.forget(self.registry, repository, subject)

    def resume_recorded(self, repository: str, scope: str, subject: str) -> tuple[str, int] | None:
        """The recorded session for ``subject`` and the offset the registry holds; None to start over."""
        if self.sessions is None or self._monolithic:
            return None
        location = self.sessions.load(self.registry, repository, subject)
        if location is None:
            return None
        base = urlsplit(self.transport.url("/"))
        if (urlsplit(location).scheme, urlsplit(location).netloc) != (base.scheme, base.netloc):
            self.sessions.forget(self.registry, repository, subject)
            return None
        try:
            status = self.transport.request("GET", location, scope=scope, expect=(204, 200))
        except (NotFoundError, RegistryError, UsageError):
            # Forgotten, expired, or (distribution) refused because it received bytes past the
            # recorded offset before the kill: start over.
            self.sessions.forget(self.registry, repository, subject)
            return None
        status.release_conn()
        session = self.transport.url(status.headers.get("Location") or location)
        _, _, end = status.headers.get("Range", "").partition("-")
        if not end.isdigit() or int(end) == 0:  # "0-0": nothing (or one byte) received
            self._cancel_upload(session, scope)
            self.sessions.forget(self.registry, repository, subject)
            return None
        return session, int(end) + 1

    def _finish(self, session: str, scope: str, digest: Digest) -> urllib3.BaseHTTPResponse:
        return self.transport.request(
            "PUT",
            _with_query(session, digest=str(digest)),
            scope=scope,
            headers={"Content-Length": "0"},
            expect=(201, 204),
        )

    # -- uploads whose digest is not known yet (hashing and sending overlap) ----------------------

    def begin_stream(self, repository: str, subject: str | None = None) -> StreamUpload | None:
        """Start an upload before the blob's digest is known; None when this registry needs it up front.

        With ``subject``, a session recorded for it by a killed push is continued when the registry still has it."""
        if self._monolithic:
            return None
        scope = scope_for(repository, "pull,push")
        resumed = self.resume_recorded(repository, scope, subject) if subject else None
        if resumed is not None:
            return StreamUpload(self, resumed[0], scope, repository, subject=subject, offset=resumed[1])
        response = self.transport.request(
            "POST", f"/v2/{repository}/blobs/uploads/", scope=scope, expect=(202,)
        )
        response.release_conn()
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.registry} started an upload without a Location header")
        return StreamUpload(self, self.transport.url(location), scope, repository, subject=subject)

    def _resume_point(
        self, repository: str, scope: str, session: str, descriptor: Descriptor
    ) -> tuple[str, int]:
        """Where an interrupted upload stands, from the registry (GET on the session → Range)."""
        if self._monolithic:
            self._cancel_upload(session, scope)
            return self._start_upload(repository, scope, descriptor.digest, None) or session, 0
        try:
            status = self.transport.request("GET", session, scope=scope, expect=(204, 200))
        except NotFoundError:
            return self._start_upload(repository, scope, descriptor.digest, None) or session, 0
        status.release_conn()
        session = self.transport.url(status.headers.get("Location") or session)
        ranged = status.headers.get("Range", "")
        _, _, end = ranged.partition("-")
        if not end.isdigit() or int(end) == 0:
            # distribution answers "0-0" for both 0 and 1 byte received: start this blob over.
            self._cancel_upload(session, scope)
            return self._start_upload(repository, scope, descriptor.digest, None) or session, 0
        return session, int(end) + 1

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Ask the registry to mount a blob from another repository; False when it will not."""
        scope = scope_for(repository, "pull,push", f"repository:{from_repository}:pull")
        session = self._start_upload(repository, scope, digest, from_repository)
        if session is None:
            self.locations.note(self.registry, repository, digest)
            return True
        self._cancel_upload(session, scope)
        return False

    @property
    def upload_mode(self) -> str:
        """How blobs are being uploaded: 'patch' (streamed PATCH) or 'monolithic' (registry refused PATCH)."""
        return "monolithic" if self._monolithic else "patch"

    @property
    def chunk_min_length(self) -> int:
        """The registry's OCI-Chunk-Min-Length, 0 when it announced none."""
        return self._chunk_min

    def delete_manifest(self, repository: str, digest: Digest) -> None:
        response = self.transport.request(
            "DELETE",
            f"/v2/{repository}/manifests/{digest}",
            scope=scope_for(repository, "delete"),
            expect=(202, 200, 405),
        )
        response.release_conn()
        if response.status == 405:
            raise UnsupportedError(
                f"registry {self.registry} does not allow deletes",
                hint="its operator must enable them (distribution: storage.delete.enabled)",
            )

    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        if self._referrers_api is False:
            return None
        path = f"/v2/{repository}/referrers/{digest}"
        if artifact_type:
            path += "?" + urlencode({"artifactType": artifact_type})
        response = self.transport.request(
            "GET",
            path,
            scope=scope_for(repository, "pull"),
            headers={"Accept": mediatype.OCI_INDEX},
            expect=(200, 404),
        )
        content_type = response.headers.get("Content-Type", "")
        body = response.data
        response.release_conn()
        if response.status == 404 or mediatype.OCI_INDEX not in content_type:
            self._referrers_api = False
            return None
        self._referrers_api = True
        found = Index.from_json(body).manifests
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def _cancel_upload(self, session: str, scope: str) -> None:
        with contextlib.suppress(MlociError):
            self.transport.request(
                "DELETE", session, scope=scope, expect=(204, 200, 202, 404), timeout=5.0, retry=False
            ).release_conn()

    @contextlib.contextmanager
    def open_blob(self, repository: str, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        """Stream a blob, resuming with ``Range`` requests after a dropped connection, verified end to end."""
        path = f"/v2/{repository}/blobs/{descriptor.digest}"
        scope = scope_for(repository, "pull")
        current = [self.transport.request("GET", path, scope=scope, stream=True)]

        def chunks() -> Iterator[bytes]:
            offset = 0
            failures = 0
            while True:
                response = current[0]
                try:
                    while chunk := response.read(_CHUNK, decode_content=False):
                        offset += len(chunk)
                        yield chunk
                    return
                except (HTTPError, OSError):
                    response.close()
                    if failures >= self.transport.max_retries:
                        raise UnavailableError(
                            f"download of {descriptor.digest} from {self.registry} kept breaking at byte {offset}"
                        ) from None
                failures += 1
                self.transport.pause(failures, None)
                resumed = self.transport.request(
                    "GET",
                    path,
                    scope=scope,
                    stream=True,
                    headers={"Range": f"bytes={offset}-"},
                    expect=(206, 200),
                )
                current[0] = resumed
                if resumed.status == 200:
                    # The server ignored the range: skip what was already received.
                    _discard(resumed, offset)

        try:
            yield verified(prefetch(chunks(), self.read_ahead), descriptor, f"blob {descriptor.digest}")
        except BaseException:
            # Unread bytes would poison a pooled connection: drop this one.
            current[0].close()
            raise
        current[0].release_conn()

    def list_tags(self, repository: str) -> list[str]:
        return sorted(
            self._paged(f"/v2/{repository}/tags/list?n=1000", "tags", scope_for(repository, "pull"))
        )

    def repositories(self) -> list[str]:
        """The registry's catalog; UnsupportedError when it has none or will not show it to these credentials."""
        try:
            return sorted(self._paged("/v2/_catalog?n=1000", "repositories", "registry:catalog:*"))
        except (NotFoundError, AuthError) as exc:
            raise UnsupportedError(
                f"registry {self.registry} does not list its repositories (catalog API: {exc.message})"
            ) from None

    def _paged(self, path: str | None, key: str, scope: str) -> list[str]:
        """Every string of ``key`` across a listing's pages (``Link: <…>; rel="next"``)."""
        items: list[str] = []
        while path:
            response = self.transport.request("GET", path, scope=scope)
            try:
                values = jsontext.loads(response.data).get(key) or []
            except (ValueError, AttributeError):
                raise RegistryError(f"registry {self.registry} sent a malformed {key} list") from None
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise RegistryError(f"registry {self.registry} sent a malformed {key} list")
            items.extend(values)
            link = response.headers.get("Link", "")
            path = link.split(";")[0].strip().strip("<>") if 'rel="next"' in link else None
        return items

    def close(self) -> None:
        self.transport.close()
        self.locations.close()
