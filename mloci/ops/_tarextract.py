"""Extract mloci's own tar layers (those a file index describes) while they stream in.

Python's ``tarfile.extractall`` with the ``data`` filter costs several system calls per member
(path resolution, chmod, utime) and needs the whole layer on disk first; for a layer of 100,000
small files that dominates a pull. Here the layer is read as a stream and only the regular files
the index lists are written — each with ``O_EXCL|O_NOFOLLOW`` at a path ``safe_path`` already
validated, under directories this function creates — so nothing else a tar can hold (links,
devices, absolute or ``..`` paths, unlisted entries) is ever created. The stream is the store's
verified iterator, drained to its end: a layer whose digest does not match raises
IntegrityError after extraction, and the caller discards the staging directory.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mloci.errors import IntegrityError

_COPY = 1 << 20


class _Stream(io.RawIOBase):
    """A forward-only file object over byte chunks, reporting each chunk consumed."""

    def __init__(self, chunks: Iterator[bytes], consumed: Callable[[int], None]) -> None:
        super().__init__()
        self._chunks = chunks
        self._consumed = consumed
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._consumed(len(chunk))
            self._buffer = memoryview(chunk)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def drain(self) -> None:
        """Read to the end, so the verifying iterator checks the digest."""
        self._buffer = memoryview(b"")
        for chunk in self._chunks:
            self._consumed(len(chunk))


def extract_indexed(
    chunks: Iterator[bytes],
    staging: Path,
    wanted: Sequence[str],
    consumed: Callable[[int], None],
    check: Callable[[], None],
) -> list[str]:
    """Write the regular files named in ``wanted`` (validated relative paths) from the tar stream into ``staging``."""
    names = set(wanted)
    written: set[str] = set()
    directories: set[str] = set()
    stream = _Stream(chunks, consumed)
    try:
        with tarfile.open(fileobj=io.BufferedReader(stream, _COPY), mode="r|", bufsize=_COPY) as tar:
            for member in tar:
                check()
                name = member.name.removeprefix("./")
                if name not in names or name in written or not member.isfile():
                    continue
                parent = name.rpartition("/")[0]
                if parent and parent not in directories:
                    (staging / parent).mkdir(parents=True, exist_ok=True)
                    directories.add(parent)
                source = tar.extractfile(member)
                if source is None:
                    continue
                fd = os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                with os.fdopen(fd, "wb") as out:
                    while data := source.read(_COPY):
                        out.write(data)
                written.add(name)
    except tarfile.TarError as exc:
        raise IntegrityError(f"corrupt tar layer: {str(exc).splitlines()[0]}") from None
    stream.drain()
    missing = names - written
    if missing:
        raise IntegrityError(f"a tar layer lacks {min(missing)!r}, which the artifact's file index lists")
    return sorted(written)
