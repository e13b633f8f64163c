"""Partial blob downloads that survive the process, so a pull killed with SIGKILL resumes.

A blob pulled from a registry downloads into ``<partial dir>/<algorithm>-<hex>`` instead of
straight into the pull's staging directory, with a sidecar ``<algorithm>-<hex>.json`` recording
the digest, the size and the byte spans written so far (updated every few MiB). The partial
directory sits on the target's filesystem — ``OUTPUT/.mloci/partial`` when the target exists,
``.mloci-partial-<name>`` beside it otherwise — so a finished blob is renamed into staging, never
copied. Nothing there is visible as pulled content: the whole blob is still verified against its
digest before it is renamed, and the pull still publishes with one rename.

A later pull of the same blob into the same place re-hashes the bytes already there (the hash
state cannot be saved) and asks the registry for the rest with ``Range``; if the final digest
does not match — a byte flipped on disk, a power cut that lost written pages — the partial is
discarded and the blob downloaded again from the start. A pull holds an exclusive ``flock`` on
each partial it writes, so two pulls never write one partial and cleanup never removes a live
one. A completed pull removes the partials it finds (only names of this form, only unlocked).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError

from mloci.errors import IntegrityError, UnavailableError
from mloci.store.registry.auth import scope_for
from mloci.store.registry.transport import Transport
from mloci.types.manifest import Descriptor

_NAME = re.compile(r"(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})(\.json)?")
_SAVE_EVERY = 16 << 20  # bytes written between two sidecar updates
_CHUNK = 1 << 20
_HASH_BLOCK = 8 << 20


def partial_dir(output: Path) -> Path:
    """Where partial downloads for a pull into ``output`` are kept (same filesystem as its staging)."""
    if output.is_dir():  # as staging goes: inside an existing target (even one reached through a link)
        return output / ".mloci" / "partial"
    return output.parent / f".mloci-partial-{output.name}"


def _linked(directory: Path) -> bool:
    """Whether the partial directory (or the marker directory holding it) is a symbolic link:
    never written or cleaned through, so nothing outside the target's tree is touched."""
    return directory.is_symlink() or (directory.parent.name == ".mloci" and directory.parent.is_symlink())


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class Partial:
    """One blob's partial download, locked by this process while open."""

    def __init__(self, data: Path, fd: int, descriptor: Descriptor, spans: list[tuple[int, int]]) -> None:
        self.data = data
        self.sidecar = data.with_name(data.name + ".json")
        self.fd = fd
        self.descriptor = descriptor
        self._spans = _merge(spans)
        self._lock = threading.Lock()
        self._unsaved = 0

    @classmethod
    def open(cls, directory: Path, descriptor: Descriptor) -> Partial | None:
        """The partial for ``descriptor`` in ``directory`` (created empty if there is none), locked;
        None when another live pull holds it, the filesystem cannot lock, or the directory is a link
        (then the blob downloads straight into staging, as without resume)."""
        directory.mkdir(parents=True, exist_ok=True)
        if _linked(directory):
            return None
        data = directory / f"{descriptor.digest.algorithm}-{descriptor.digest.encoded}"
        fd = os.open(data, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            info = os.fstat(fd)
        except OSError:
            os.close(fd)
            return None
        partial = cls(data, fd, descriptor, [])
        partial._spans = _merge(
            [(s, min(e, info.st_size)) for s, e in partial._read_sidecar()]  # never past what is on disk
        )
        return partial

    def _read_sidecar(self) -> list[tuple[int, int]]:
        try:
            record = json.loads(self.sidecar.read_bytes())
        except (OSError, ValueError):
            return []
        if not isinstance(record, dict) or record.get("version") != 1:
            return []
        if record.get("digest") != str(self.descriptor.digest) or record.get("size") != self.descriptor.size:
            return []
        spans: list[tuple[int, int]] = []
        for item in record.get("spans") or []:
            if (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
                and 0 <= item[0] < item[1] <= self.descriptor.size
            ):
                spans.append((item[0], item[1]))
        return spans

    @property
    def spans(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self._spans)

    def prefix(self) -> int:
        """How many bytes from the start are already here."""
        spans = self.spans
        return spans[0][1] if spans and spans[0][0] == 0 else 0

    def missing(self) -> list[tuple[int, int]]:
        """The byte spans still to fetch."""
        gaps: list[tuple[int, int]] = []
        position = 0
        for start, end in self.spans:
            if start > position:
                gaps.append((position, start))
            position = max(position, end)
        if position < self.descriptor.size:
            gaps.append((position, self.descriptor.size))
        return gaps

    def written(self, offset: int, count: int) -> None:
        """Record that ``count`` bytes at ``offset`` reached the file (any thread)."""
        with self._lock:
            self._spans = _merge([*self._spans, (offset, offset + count)])
            self._unsaved += count
            due = self._unsaved >= _SAVE_EVERY
            if due:
                self._unsaved = 0
        if due:
            self.save()

    def save(self) -> None:
        """Write the sidecar (atomically; no fsync — a power cut is caught by the final digest check)."""
        with self._lock:
            record: dict[str, Any] = {
                "version": 1,
                "digest": str(self.descriptor.digest),
                "size": self.descriptor.size,
                "spans": [list(span) for span in self._spans],
            }
            tmp = self.sidecar.with_name(self.sidecar.name + ".tmp")
            with contextlib.suppress(OSError):
                tmp.write_text(json.dumps(record), encoding="utf-8")
                tmp.replace(self.sidecar)

    def discard(self) -> None:
        """Forget everything received (the bytes stay allocated and are overwritten)."""
        with self._lock:
            self._spans = []
            self._unsaved = 0
        self.save()

    def hash_prefix(self, length: int, check: Callable[[], None]) -> Any:
        """A hasher fed with the first ``length`` bytes of the file."""
        hasher = hashlib.new(self.descriptor.digest.algorithm)
        done = 0
        while done < length:
            check()
            block = os.pread(self.fd, min(_HASH_BLOCK, length - done), done)
            if not block:
                break
            hasher.update(block)
            done += len(block)
        return hasher

    def complete(self, target: Path) -> None:
        """Move the verified blob to ``target`` and drop the record; the lock goes with ``close``."""
        self.data.replace(target)
        self.sidecar.unlink(missing_ok=True)

    def close(self, *, keep: bool = True) -> None:
        """Save the record for a later run, or (``keep`` false, or nothing received) remove the partial."""
        try:
            if keep and self.spans:
                if self.data.exists():
                    self.save()
                return
            self.sidecar.unlink(missing_ok=True)
            if self.data.exists() and os.path.samestat(self.data.stat(), os.fstat(self.fd)):
                self.data.unlink()
        finally:
            os.close(self.fd)


def worth_keeping(error: BaseException) -> bool:
    """Whether a download that failed with ``error`` should keep its partial for the next run:
    yes when interrupted or the network failed; no when the bytes were wrong or the disk failed."""
    if isinstance(error, IntegrityError):
        return False
    return not isinstance(error, OSError) or isinstance(error, ConnectionError | TimeoutError)


def clean_partials(directory: Path) -> None:
    """Remove the partials in ``directory`` no live pull holds, then the directory if it is empty.

    Only names of the form this module writes are touched; anything else keeps the directory."""
    if _linked(directory):
        return
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        found = _NAME.fullmatch(entry.name)
        if found is None or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if found.group(3):  # a sidecar: goes with its data file, or alone when that is gone
            if not path.with_name(path.name.removesuffix(".json")).exists():
                path.unlink(missing_ok=True)
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live pull writes it
        try:
            path.with_name(path.name + ".json").unlink(missing_ok=True)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    with contextlib.suppress(OSError):
        directory.rmdir()


def ranged_chunks(
    transport: Transport, registry: str, repository: str, descriptor: Descriptor, offset: int
) -> Iterator[bytes]:
    """The blob's bytes from ``offset`` on (``Range``), reconnecting where a dropped connection stopped."""
    path = f"/v2/{repository}/blobs/{descriptor.digest}"
    scope = scope_for(repository, "pull")
    failures = 0
    while offset < descriptor.size:
        response: urllib3.BaseHTTPResponse | None = None
        try:
            response = transport.request(
                "GET",
                path,
                scope=scope,
                stream=True,
                headers={"Range": f"bytes={offset}-"} if offset else {},
                expect=(206, 200),
            )
            last: int | None = None  # the last byte a 206 says it holds
            if response.status == 200:
                skip_body(response, offset)  # the server ignored the range
            else:
                first, last = _content_range(response.headers.get("Content-Range"), offset)
                if first != offset:
                    raise IntegrityError(
                        f"blob {descriptor.digest}: the registry answered from byte {first} "
                        f"a request from byte {offset}"
                    )
            while chunk := response.read(min(_CHUNK, descriptor.size - offset), decode_content=False):
                offset += len(chunk)
                failures = 0  # bytes arrived: a later break starts a new count
                yield chunk
                if offset >= descriptor.size:
                    break
            else:
                if last is not None and offset == last + 1 < descriptor.size:
                    continue  # a server that sends a long range in pieces: ask for the next one
                # The response ended where its Content-Length said (urllib3 raises on a cut one):
                # the registry holds fewer bytes than the descriptor names.
                raise IntegrityError(
                    f"blob {descriptor.digest}: {offset} bytes instead of the expected {descriptor.size}"
                )
        except (HTTPError, OSError):
            failures += 1
            pause_or_give_up(transport, failures, descriptor, registry, offset)
        finally:
            if response is not None:
                response.close()


def _content_range(header: str | None, asked: int) -> tuple[int, int | None]:
    """First and last byte of a 206's ``Content-Range: bytes FIRST-LAST/SIZE`` (RFC 9110 §14.4);
    without a readable one, the range asked for and an unknown end."""
    unit, _, spec = (header or "").partition(" ")
    first, _, rest = spec.partition("-")
    last = rest.partition("/")[0]
    if unit != "bytes" or not first.isdigit() or not last.isdigit():
        return asked, None
    return int(first), int(last)


def pause_or_give_up(
    transport: Transport, failures: int, descriptor: Descriptor, registry: str, offset: int
) -> None:
    """Wait before reconnecting after the ``failures``-th break, or raise once retries are spent."""
    if failures > transport.max_retries:
        raise UnavailableError(
            f"download of {descriptor.digest} from {registry} kept breaking at byte {offset}"
        ) from None
    transport.pause(failures, None)


def skip_body(response: urllib3.BaseHTTPResponse, count: int) -> None:
    """Read past the first ``count`` bytes (a server that ignored ``Range`` sent the whole blob)."""
    while count > 0:
        data = response.read(min(count, _CHUNK), decode_content=False)
        if not data:
            raise ConnectionError("the registry ended the download early")
        count -= len(data)
