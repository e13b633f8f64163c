"""A read-only :class:`~mloci.store.Store` over an OCI image-layout tar (``oci-archive:PATH``).

``mloci export`` writes such archives; ``inspect``, ``verify``, ``pull`` and ``import`` read them
through this store without unpacking: the tar's members are indexed once and each blob is read
in place (a gzip-compressed archive is first decompressed into ``$MLOCI_HOME/tmp``). Every
manifest and blob read is verified against its digest, like any other store.

Reference form: ``oci-archive:PATH[:NAME][@DIGEST]``. NAME is an index entry's
``org.opencontainers.image.ref.name`` (mloci writes ``<repository>:<tag>``) or just its tag
when that is unambiguous; without NAME and DIGEST the archive must hold exactly one tagged
artifact. Only the members ``oci-layout``, ``index.json`` and ``blobs/<alg>/<hex>`` are ever read.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mloci import settings
from mloci.errors import IntegrityError, NotFoundError, UnsupportedError, UsageError
from mloci.store.base import MAX_MANIFEST_SIZE, BlobOutcome, Progress, verified, verify_bytes
from mloci.types import annotations as ann
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.types.reference import Reference, is_valid_repository, is_valid_tag

SCHEME = "oci-archive:"
# Where an archive reference names no repository (``oci-archive:x.tar:1.0.0``).
ANY_REPOSITORY = "archive"
_CHUNK = 1 << 20
_MAX_INDEX = 64 << 20


@dataclass(frozen=True)
class ArchiveReference(Reference):
    """A reference into an OCI image-layout tar. ``registry`` is None; ``archive`` is the file."""

    archive: Path = field(default=Path())
    name_given: bool = False  # whether the user named a repository (then entries must match it)

    def __str__(self) -> str:
        text = f"{SCHEME}{self.archive}"
        if self.tag:
            text += f":{self.repository}:{self.tag}" if self.name_given else f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def name(self) -> str:
        return f"{SCHEME}{self.archive}"


def is_archive_reference(text: str) -> bool:
    return text.startswith(SCHEME)


def parse_archive_reference(text: str) -> ArchiveReference:
    """``oci-archive:PATH[:NAME][@DIGEST]`` → ArchiveReference (PATH is the part before the first ':')."""
    rest = text[len(SCHEME) :]
    digest = None
    if "@" in rest:
        rest, _, digest_text = rest.rpartition("@")
        digest = Digest.parse(digest_text)
    path, _, name = rest.partition(":")
    if not path:
        raise UsageError(f"invalid reference {text!r}", hint="expected oci-archive:PATH[:NAME][@sha256:…]")
    repository, tag, given = ANY_REPOSITORY, None, False
    if name:
        repo, sep, tag_text = name.rpartition(":")
        tag = tag_text if sep else name
        if sep:
            if not is_valid_repository(repo):
                raise UsageError(f"invalid repository name {repo!r} in {text!r}")
            repository, given = repo, True
        if not is_valid_tag(tag):
            raise UsageError(f"invalid tag {tag!r} in {text!r}")
    return ArchiveReference(
        registry=None,
        repository=repository,
        tag=tag,
        digest=digest,
        archive=Path(path).expanduser(),
        name_given=given,
    )


class ArchiveStore:
    """Read-only store over an OCI image-layout tar (plain or gzip-compressed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._members: dict[str, tuple[int, int]] = {}  # name -> (offset of data, size)
        self._file: BinaryIO | None = None
        self._scratch: Path | None = None
        self._entries: list[dict[str, Any]] | None = None

    @property
    def location(self) -> str:
        return f"archive {self.path}"

    # -- opening ----------------------------------------------------------------------------------

    def _open(self) -> BinaryIO:
        if self._file is not None:
            return self._file
        try:
            handle: BinaryIO = self.path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"archive {self.path} not found") from None
        except OSError as exc:
            raise UsageError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if handle.read(2) == b"\x1f\x8b":
            handle.close()
            handle = self._decompress()
        handle.seek(0)
        try:
            with tarfile.open(fileobj=handle, mode="r:") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if member.isfile():
                        self._members[name] = (member.offset_data, member.size)
        except tarfile.TarError as exc:
            handle.close()
            raise IntegrityError(f"{self.path} is not a tar archive: {str(exc).splitlines()[0]}") from None
        if "oci-layout" not in self._members or "index.json" not in self._members:
            handle.close()
            raise IntegrityError(
                f"{self.path} is not an OCI image-layout archive (no oci-layout or index.json)"
            )
        self._file = handle
        return handle

    def _decompress(self) -> BinaryIO:
        scratch_parent = settings.home() / "tmp"
        scratch_parent.mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix="archive-", dir=scratch_parent))
        target = self._scratch / "archive.tar"
        try:
            with gzip.open(self.path, "rb") as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            shutil.rmtree(self._scratch, ignore_errors=True)
            raise IntegrityError(f"{self.path}: corrupt gzip stream ({exc})") from None
        return target.open("rb")

    def _read_member(self, name: str, limit: int) -> bytes:
        handle = self._open()
        if name not in self._members:
            raise NotFoundError(f"{name} is missing from the {self.location}")
        offset, size = self._members[name]
        if size > limit:
            raise IntegrityError(f"{name} in the {self.location} is larger than {limit} bytes")
        handle.seek(offset)
        return handle.read(size)

    def entries(self) -> list[dict[str, Any]]:
        """The archive's index.json manifests."""
        if self._entries is None:
            try:
                document = json.loads(self._read_member("index.json", _MAX_INDEX))
                entries = document["manifests"]
                if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise IntegrityError(f"index.json of the {self.location} is malformed") from None
            self._entries = entries
        return self._entries

    @staticmethod
    def ref_name(entry: dict[str, Any]) -> str | None:
        value = (entry.get("annotations") or {}).get(ann.REF_NAME)
        return value if isinstance(value, str) else None

    @staticmethod
    def repository_of(entry: dict[str, Any]) -> str | None:
        annotations = entry.get("annotations") or {}
        name = annotations.get(ann.REF_NAME)
        if isinstance(name, str) and ":" in name:
            return name.rpartition(":")[0]
        value = annotations.get(ann.REPOSITORY)
        return value if isinstance(value, str) else None

    def _blob_name(self, digest: Digest) -> str:
        return f"blobs/{digest.algorithm}/{digest.encoded}"

    # -- Store ------------------------------------------------------------------------------------

    def _find(self, ref: Reference) -> dict[str, Any]:
        entries = self.entries()
        given = (isinstance(ref, ArchiveReference) and ref.name_given) or ref.repository != ANY_REPOSITORY
        if ref.tag is None:
            tagged = [e for e in entries if self.ref_name(e) and not _is_support_tag(self.ref_name(e) or "")]
            if len(tagged) == 1:
                return tagged[0]
            names = ", ".join(sorted(self.ref_name(e) or "" for e in tagged)[:5])
            raise UsageError(
                f"{self.location} holds {len(tagged)} tagged artifacts; name one",
                hint=f"e.g. oci-archive:{self.path}:{names.split(', ')[0] if names else 'NAME'} (have: {names})",
            )
        exact = f"{ref.repository}:{ref.tag}"
        found = [e for e in entries if self.ref_name(e) in (exact, ref.tag)]
        if not found and not given:
            found = [e for e in entries if (self.ref_name(e) or "").rpartition(":")[2] == ref.tag]
        if len(found) > 1:
            names = ", ".join(sorted(self.ref_name(e) or "" for e in found))
            raise UsageError(
                f"tag {ref.tag!r} is ambiguous in the {self.location} ({names})", hint="name it fully"
            )
        if not found:
            raise NotFoundError(f"{ref.tag} not found in the {self.location}")
        return found[0]

    def resolve(self, ref: Reference) -> Descriptor:
        if ref.digest is not None:
            for entry in self.entries():
                if entry.get("digest") == str(ref.digest):
                    return Descriptor.model_validate(entry).model_copy(update={"annotations": None})
            self._open()
            name = self._blob_name(ref.digest)
            if name not in self._members:
                raise NotFoundError(f"{ref.digest} not found in the {self.location}")
            data = self._read_member(name, MAX_MANIFEST_SIZE)
            try:
                media_type = json.loads(data).get("mediaType")
            except (ValueError, AttributeError):
                media_type = None
            if not isinstance(media_type, str):
                raise IntegrityError(f"{ref.digest} in the {self.location} is not a manifest")
            return Descriptor(media_type=media_type, digest=ref.digest, size=len(data))
        return Descriptor.model_validate(self._find(ref)).model_copy(update={"annotations": None})

    def fetch_manifest(self, ref: Reference) -> tuple[Descriptor, bytes]:
        descriptor = self.resolve(ref)
        if descriptor.size > MAX_MANIFEST_SIZE:
            raise IntegrityError(f"manifest {descriptor.digest} is larger than {MAX_MANIFEST_SIZE} bytes")
        data = self._read_member(self._blob_name(descriptor.digest), MAX_MANIFEST_SIZE)
        verify_bytes(data, descriptor, f"manifest {descriptor.digest}")
        return descriptor, data

    def push_manifest(self, ref: Reference, data: bytes, media_type: str) -> Descriptor:
        raise UnsupportedError(f"the {self.location} is read-only; import it first ('mloci import')")

    def has_blob(self, repository: str, digest: Digest) -> bool:
        self._open()
        return self._blob_name(digest) in self._members

    def push_blob(self, repository: str, blob: Blob, progress: Progress | None = None) -> BlobOutcome:
        raise UnsupportedError(f"the {self.location} is read-only; import it first ('mloci import')")

    @contextlib.contextmanager
    def open_blob(self, repository: str, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        self._open()
        name = self._blob_name(descriptor.digest)
        if name not in self._members:
            raise NotFoundError(f"blob {descriptor.digest} is missing from the {self.location}")
        offset, size = self._members[name]
        # A handle of its own, so concurrent reads (pull fetches layers in parallel) do not interleave.
        source = self._scratch / "archive.tar" if self._scratch else self.path
        with source.open("rb") as handle:
            handle.seek(offset)

            def chunks() -> Iterator[bytes]:
                left = size
                while left > 0:
                    chunk = handle.read(min(_CHUNK, left))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk

            yield verified(chunks(), descriptor, f"blob {descriptor.digest}")

    def list_tags(self, repository: str) -> list[str]:
        names = [self.ref_name(e) or "" for e in self.entries()]
        return sorted(n.rpartition(":")[2] for n in names if n.rpartition(":")[0] == repository)

    def delete_manifest(self, repository: str, digest: Digest) -> None:
        raise UnsupportedError(f"the {self.location} is read-only")

    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        return None  # archives keep referrers with the tag schema, like the local store

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def _is_support_tag(name: str) -> bool:
    """Tags that hold referrers (``sha256-<hex>``) or cosign signatures, not artifacts of their own."""
    tag = name.rpartition(":")[2]
    return tag.startswith(("sha256-", "sha512-"))
