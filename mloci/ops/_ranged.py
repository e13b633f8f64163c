"""Download one large blob over several connections, each fetching a byte range (``pull --connections``).

Registries often redirect blob downloads to object storage, where one connection gets far less
than the link. Here the blob is split into N contiguous ranges fetched in parallel and written in
place (``pwrite``) into the preallocated file; a dropped range resumes from where it stopped. The
digest is then checked by hashing the finished file (from the page cache), so the content is
verified exactly as a single-stream pull verifies it. A server that ignores ``Range`` makes the
caller fall back to one stream.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from urllib3.exceptions import HTTPError

from mloci.errors import IntegrityError, UnavailableError
from mloci.ops._parallel import CancelToken, run_all
from mloci.store.registry.auth import scope_for
from mloci.store.registry.transport import Transport
from mloci.types.manifest import Descriptor

MIN_RANGED_SIZE = 32 << 20  # smaller blobs are not worth splitting
_CHUNK = 1 << 20


@runtime_checkable
class ServesRanges(Protocol):
    """A store reached over HTTP, whose blob GETs take ``Range`` (the registry adapter)."""

    registry: str
    transport: Transport


class RangesUnsupported(Exception):
    """The server answered a range request with the whole blob."""


def ranged_download(
    store: ServesRanges,
    repository: str,
    descriptor: Descriptor,
    fd: int,
    connections: int,
    progress: Callable[[int], None],
    token: CancelToken,
    *,
    missing: list[tuple[int, int]] | None = None,
    written: Callable[[int, int], None] | None = None,
) -> None:
    """Fill ``fd`` with the blob, ``connections`` ranges at a time, then verify its digest.

    ``missing``: only these byte spans are fetched (a resumed partial download holds the rest);
    ``written(offset, count)`` is told of every block once it is in the file.
    """
    size = descriptor.size
    spans = [(0, size)] if missing is None else missing
    part = max(1, -(-sum(end - start for start, end in spans) // connections))
    ranges = [(at, min(at + part, end)) for start, end in spans for at in range(start, end, part)]
    path = f"/v2/{repository}/blobs/{descriptor.digest}"
    scope = scope_for(repository, "pull")

    def fetch(span: tuple[int, int], inner: CancelToken) -> None:
        offset, end = span
        failures = 0
        while offset < end:
            response = store.transport.request(
                "GET",
                path,
                scope=scope,
                stream=True,
                headers={"Range": f"bytes={offset}-{end - 1}"},
                expect=(206, 200),
            )
            try:
                if response.status != 206:
                    raise RangesUnsupported
                while offset < end and (
                    chunk := response.read(min(_CHUNK, end - offset), decode_content=False)
                ):
                    token.check()
                    inner.check()
                    os.pwrite(fd, chunk, offset)
                    if written is not None:
                        written(offset, len(chunk))
                    offset += len(chunk)
                    progress(len(chunk))
            except (HTTPError, OSError) as exc:
                if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
                    raise  # a local write failed: no retry helps
                failures += 1
                if failures > store.transport.max_retries:
                    raise UnavailableError(
                        f"download of {descriptor.digest} from {store.registry} kept breaking at byte {offset}"
                    ) from None
                store.transport.pause(failures, None)
            finally:
                response.close()

    run_all(fetch, ranges, connections)  # its own token: a failed range must not cancel sibling layers
    hasher = hashlib.new(descriptor.digest.algorithm)
    done = 0
    while done < size:
        token.check()
        chunk = os.pread(fd, min(_CHUNK * 8, size - done), done)
        if not chunk:
            break
        hasher.update(chunk)
        done += len(chunk)
    if done != size or hasher.hexdigest() != descriptor.digest.encoded:
        raise IntegrityError(f"blob {descriptor.digest}: content does not match the digest")
