"""Write to a file on a background thread, so hashing the next chunk overlaps writing this one.

A verified download has three costs: receiving (the store's prefetch thread), hashing (the
consuming thread) and writing. hashlib and ``os.write`` both release the GIL, so with the write on
its own thread a pull costs about the slowest of the three instead of hash + write. The queue is
bounded: memory stays flat whatever the blob size.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from types import TracebackType

_STOP = b""


class BackgroundWriter:
    """``write`` queues a chunk for ``fd``; ``close`` waits until everything is written (and raises what failed)."""

    def __init__(self, fd: int, depth: int = 8, *, on_written: Callable[[int], None] | None = None) -> None:
        self._fd = fd
        self._on_written = on_written  # told each chunk's length once it is in the file
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mloci-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (chunk := self._queue.get()) is not _STOP:
                if self._abandon.is_set():
                    continue  # drain without writing
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self._fd, view) :]
                if self._on_written is not None:
                    self._on_written(len(chunk))
        except BaseException as exc:  # handed to the producer
            self._error = exc
            self._abandon.set()
            while self._queue.get() is not _STOP:  # keep the producer from blocking
                pass

    def _put(self, chunk: bytes) -> None:
        while True:
            try:
                self._queue.put(chunk, timeout=0.1)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    return

    def write(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        if chunk:
            self._put(chunk)

    def close(self) -> None:
        self._put(_STOP)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._abandon.set()
        self._put(_STOP)
        self._thread.join()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
