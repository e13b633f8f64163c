"""A :class:`~mloci.store.Store` over the OCI distribution API (spec v1.1)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mloci.errors import IntegrityError, MlociError, NotFoundError, RegistryError
from mloci.store.base import MAX_MANIFEST_SIZE, Progress, verified, verify_bytes
from mloci.store.registry.auth import Credentials, scope_for
from mloci.store.registry.transport import Transport
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.types.reference import Reference

_ACCEPT = ", ".join(mediatype.MANIFEST_TYPES)
_CHUNK = 1 << 20


class _CountingReader:
    """A file wrapper that reports bytes read, so uploads drive progress bars."""

    def __init__(self, handle: BinaryIO, progress: Progress | None) -> None:
        self._handle = handle
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        if self._progress and data:
            self._progress(len(data))
        return data


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


class RegistryStore:
    def __init__(
        self,
        registry: str,
        *,
        plain_http: bool | None = None,
        insecure: bool = False,
        ca_file: str | None = None,
        credentials: Credentials | None = None,
        concurrency: int = 4,
    ) -> None:
        self.registry = registry
        self.transport = Transport(
            registry,
            plain_http=plain_http,
            insecure=insecure,
            ca_file=ca_file,
            credentials=credentials,
            concurrency=concurrency,
        )

    @property
    def location(self) -> str:
        return f"registry {self.registry}"

    def _manifest_path(self, ref: Reference) -> str:
        identifier = ref.identifier
        if identifier is None:
            raise NotFoundError(f"{ref} names no tag or digest")
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
                media_type = json.loads(data).get("mediaType") or media_type
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
        return Descriptor(
            media_type=media_type or mediatype.OCI_MANIFEST, digest=digest, size=len(data)
        ), data

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
        return True

    def push_blob(self, repository: str, blob: Blob, progress: Progress | None = None) -> None:
        scope = scope_for(repository, "pull,push")
        descriptor = blob.descriptor
        start = self.transport.request(
            "POST", f"/v2/{repository}/blobs/uploads/", scope=scope, expect=(202, 201)
        )
        start.release_conn()
        if start.status == 201:
            return
        location = start.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.registry} started an upload without a Location header")
        session = self.transport.url(location)
        try:
            with blob.open() as handle:
                done = self.transport.request(
                    "PUT",
                    _with_query(session, digest=str(descriptor.digest)),
                    scope=scope,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(descriptor.size),
                    },
                    body=_CountingReader(handle, progress),
                    expect=(201, 204),
                    rewind=lambda: handle.seek(0),
                )
        except BaseException:
            # Interrupted or failed: tell the registry to drop the half-written upload.
            self._cancel_upload(session, scope)
            raise
        done.release_conn()
        header = done.headers.get("Docker-Content-Digest")
        if header and header != str(descriptor.digest):
            raise IntegrityError(f"registry stored blob as {header}, expected {descriptor.digest}")

    def _cancel_upload(self, session: str, scope: str) -> None:
        with contextlib.suppress(MlociError):
            self.transport.request(
                "DELETE", session, scope=scope, expect=(204, 200, 404), timeout=5.0
            ).release_conn()

    @contextlib.contextmanager
    def open_blob(self, repository: str, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        response = self.transport.request(
            "GET",
            f"/v2/{repository}/blobs/{descriptor.digest}",
            scope=scope_for(repository, "pull"),
            stream=True,
        )

        def chunks() -> Iterator[bytes]:
            while chunk := response.read(_CHUNK, decode_content=False):
                yield chunk

        try:
            yield verified(chunks(), descriptor, f"blob {descriptor.digest}")
        except BaseException:
            # Unread bytes would poison a pooled connection: drop this one.
            response.close()
            raise
        response.release_conn()

    def list_tags(self, repository: str) -> list[str]:
        tags: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list?n=1000"
        while path:
            response = self.transport.request("GET", path, scope=scope_for(repository, "pull"))
            try:
                tags.extend(json.loads(response.data).get("tags") or [])
            except (ValueError, AttributeError):
                raise RegistryError(f"registry {self.registry} sent a malformed tag list") from None
            link = response.headers.get("Link", "")
            path = link.split(";")[0].strip().strip("<>") if 'rel="next"' in link else None
        return sorted(tags)

    def close(self) -> None:
        self.transport.close()
