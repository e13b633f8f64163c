"""Receive a blob straight into its file's pages, hashing behind the receiver.

``curl -o`` copies every byte twice: from the socket into its buffer, from the buffer into the page
cache. Here the preallocated output file is mapped and the socket reads land in the mapping — one
copy, and no fresh user memory per chunk (on a VM, touching new memory is what costs). A second
thread hashes each block once it has arrived (hashlib releases the GIL), then drops it from the
mapping, so a pull uses about the CPU of ``curl`` plus the hash, on two cores at once, and its
resident memory stays flat whatever the blob size.

Only used where it is safe: Linux (``MADV_POPULATE_WRITE`` reports a failure as an error instead of
a ``SIGBUS``), a file whose blocks ``posix_fallocate`` reserved (a full disk fails before any byte
is fetched) on a filesystem that writes pages back in place, a blob large enough to be worth it.
Everything else uses the chunked path.
"""

from __future__ import annotations

import contextlib
import http.client
import mmap
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError

from mloci.errors import IntegrityError
from mloci.ops._parallel import CancelToken
from mloci.ops._partial import pause_or_give_up, skip_body
from mloci.ops._ranged import ServesRanges
from mloci.store.registry.auth import scope_for
from mloci.types.manifest import Descriptor

MIN_MAPPED_SIZE = 8 << 20  # below this the chunked path costs no more
_BLOCK = 4 << 20  # populated, received, then hashed and dropped from the mapping, as one unit
_READ = 1 << 20  # at most this much per read, so cancellation is noticed between reads
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)  # Linux 5.14; named by Python 3.13?
_END = -1

# Filesystems where a page populated over preallocated blocks is written back in place, so the
# write cannot fail later. Copy-on-write ones (btrfs, zfs) need new blocks at writeback, and on
# network or FUSE filesystems (where glibc emulates posix_fallocate) a fault can fail: a mapped
# write would end the process with SIGBUS instead of an error, so they take the chunked path.
_MAPPABLE_FILESYSTEMS = frozenset({"ext4", "xfs", "tmpfs"})


def can_map(fd: int, size: int, preallocated: bool) -> bool:
    """Whether a blob of ``size`` bytes written to ``fd`` (``preallocated`` or not) takes this path."""
    return (
        preallocated
        and size >= MIN_MAPPED_SIZE
        and sys.platform.startswith("linux")
        and sys.maxsize > 2**32
        and filesystem_type(fd) in _MAPPABLE_FILESYSTEMS
    )


def filesystem_type(fd: int) -> str | None:
    """The type of the filesystem holding ``fd`` (``ext4``, ``nfs``…), from /proc/self/mountinfo."""
    info = os.fstat(fd)
    device = f"{os.major(info.st_dev)}:{os.minor(info.st_dev)}"
    try:
        with Path("/proc/self/mountinfo").open(encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                # ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER-OPTIONS
                if len(fields) > 2 and fields[2] == device and "-" in fields[6:]:
                    return fields[fields.index("-", 6) + 1]
    except (OSError, IndexError):
        return None
    return None


def map_file(fd: int, size: int, start: int) -> mmap.mmap | None:
    """The file ``fd`` (``size`` bytes, preallocated) mapped for :func:`receive` from ``start``;
    None when it cannot be here — the caller then takes the chunked path, nothing fetched yet."""
    try:
        mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, ValueError, OverflowError):
        return None
    first = start - start % mmap.PAGESIZE
    try:
        if start < size:  # a partial may already hold every byte: then only the digest is left
            mapping.madvise(_MADV_POPULATE_WRITE, first, min(size, start + _BLOCK) - first)
    except OSError:
        mapping.close()
        return None  # an older kernel: a failed write fault could only be reported as SIGBUS
    return mapping


def receive(
    store: ServesRanges,
    repository: str,
    descriptor: Descriptor,
    mapping: mmap.mmap,
    start: int,
    hasher: Any,
    progress: Callable[[int], None],
    token: CancelToken,
    *,
    written: Callable[[int, int], None] | None = None,
) -> None:
    """Fill bytes ``start…`` of the mapped file with the blob and verify it; the mapping is closed.

    ``hasher`` already holds the first ``start`` bytes. ``progress(n)`` and ``written(offset, n)``
    are told of the bytes once they are in the file. IntegrityError when the bytes do not match the
    digest; UnavailableError when the connection keeps breaking.
    """
    try:
        _Receiver(store, repository, descriptor, mapping, hasher, progress, token, written).run(start)
    finally:
        # A view may still be held by the traceback of an error in flight: unmapped with it then.
        with contextlib.suppress(BufferError):
            mapping.close()
    if hasher.hexdigest() != descriptor.digest.encoded:
        raise IntegrityError(f"blob {descriptor.digest}: content does not match the digest")


class _Receiver:
    """The calling thread receives (it takes signals and cancellation); a helper thread hashes."""

    def __init__(
        self,
        store: ServesRanges,
        repository: str,
        descriptor: Descriptor,
        mapping: mmap.mmap,
        hasher: Any,
        progress: Callable[[int], None],
        token: CancelToken,
        written: Callable[[int, int], None] | None,
    ) -> None:
        self.store = store
        self.repository = repository
        self.descriptor = descriptor
        self.mapping = mapping
        self.hasher = hasher
        self.progress = progress
        self.token = token
        self.written = written
        # Bounded: received pages stay mapped until hashed, so the lag is what memory grows with.
        self.blocks: queue.Queue[tuple[int, int]] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.queued = 0  # bytes handed to the hashing thread (always a prefix of the blob)

    def run(self, start: int) -> None:
        self.queued = start
        hashing = threading.Thread(target=self._hash, name="mloci-hash", daemon=True)
        hashing.start()
        try:
            self._receive(start)
        finally:
            self.blocks.put((_END, _END))
            hashing.join()
        if self.error is not None:
            raise self.error

    def _hash(self) -> None:
        try:
            while (block := self.blocks.get())[0] != _END:
                begin, end = block
                with memoryview(self.mapping) as whole, whole[begin:end] as view:
                    self.hasher.update(view)
                # Hashed: drop the pages from this process (they stay in the page cache, dirty,
                # and are written back as usual), so resident memory does not grow with the blob.
                # Whole pages only: the receiver may still be filling the page ``end`` falls in.
                first = begin - begin % mmap.PAGESIZE
                last = end if end == len(self.mapping) else end - end % mmap.PAGESIZE
                if last > first:
                    self.mapping.madvise(mmap.MADV_DONTNEED, first, last - first)
        except BaseException as exc:  # handed to the receiver
            self.error = exc
            while self.blocks.get()[0] != _END:
                pass

    def _receive(self, offset: int) -> None:
        size = self.descriptor.size
        transport = self.store.transport
        path = f"/v2/{self.repository}/blobs/{self.descriptor.digest}"
        scope = scope_for(self.repository, "pull")
        failures = 0
        with memoryview(self.mapping) as whole:
            while offset < size:
                response = transport.request(
                    "GET",
                    path,
                    scope=scope,
                    stream=True,
                    headers={"Range": f"bytes={offset}-"} if offset else {},
                    expect=(206, 200) if offset else (200,),
                )
                reusable = False
                try:
                    if offset and response.status == 200:
                        skip_body(response, offset)  # the server ignored the range
                    read_into = _reader(response)
                    while offset < size:
                        end = min(offset + _BLOCK, size)
                        aligned = offset - offset % mmap.PAGESIZE
                        self.mapping.madvise(_MADV_POPULATE_WRITE, aligned, end - aligned)
                        while offset < end:
                            self.token.check()
                            if self.error is not None:
                                raise self.error
                            with whole[offset : min(offset + _READ, end)] as view:
                                try:
                                    count = read_into(view)
                                except OSError as exc:  # writing into the mapping raises none:
                                    raise ConnectionError(str(exc)) from exc  # TLS, reset, unreachable
                            if not count:
                                if _ended_whole(response):  # a whole response, but short of the blob
                                    raise IntegrityError(
                                        f"blob {self.descriptor.digest}: {offset} bytes instead of "
                                        f"the expected {size}"
                                    )
                                raise ConnectionError("the registry ended the download early")
                            offset += count
                            failures = 0  # bytes arrived: a later break starts a new count
                            self.progress(count)
                        self._hand_over(offset)
                    reusable = _finished(response)
                except (HTTPError, OSError, http.client.HTTPException) as exc:
                    self._hand_over(offset)  # what arrived before the break is in the file
                    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
                        raise  # the disk, not the network: no retry helps
                    failures += 1
                    pause_or_give_up(transport, failures, self.descriptor, self.store.registry, offset)
                finally:
                    if reusable:
                        response.release_conn()
                    else:
                        response.close()

    def _hand_over(self, offset: int) -> None:
        """Record bytes ``queued…offset`` as in the file and queue them for hashing."""
        if offset > self.queued:
            if self.written is not None:
                self.written(self.queued, offset - self.queued)
            self.blocks.put((self.queued, offset))
            self.queued = offset


def _reader(response: urllib3.BaseHTTPResponse) -> Callable[[memoryview], int]:
    """``readinto`` of the response's undecoded body, straight from the socket when possible."""
    raw = getattr(response, "_fp", None)  # urllib3's own readinto reads into a bytes object and copies
    if isinstance(raw, http.client.HTTPResponse):
        return raw.readinto

    def copying(view: memoryview) -> int:
        data = response.read(len(view), decode_content=False)
        view[: len(data)] = data
        return len(data)

    return copying


def _finished(response: urllib3.BaseHTTPResponse) -> bool:
    """Whether the body was read to its end, so the connection can serve the next request."""
    raw = getattr(response, "_fp", None)
    return isinstance(raw, http.client.HTTPResponse) and raw.isclosed()


def _ended_whole(response: urllib3.BaseHTTPResponse) -> bool:
    """Whether a body that stopped arriving had reached its ``Content-Length`` (or, without one, its
    end): the server holds fewer bytes than the descriptor names. Otherwise the connection broke."""
    raw = getattr(response, "_fp", None)
    if not isinstance(raw, http.client.HTTPResponse):
        return True  # urllib3's own reads raise on a cut body
    return raw.length is None or raw.length == 0
