"""Read ahead on a background thread, so network reads overlap hashing and disk writes.

Socket reads, hashlib updates (on large buffers) and file writes all release the GIL, so a
two-stage pipeline keeps both cores busy: verified pulls then cost about max(network, hash)
instead of their sum. The queue is bounded: memory stays flat whatever the blob size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

_END = object()


def prefetch(chunks: Iterator[bytes], depth: int = 8) -> Iterator[bytes]:
    """Yield what ``chunks`` yields, produced up to ``depth`` chunks ahead on another thread."""
    pending: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    worker = threading.Thread(target=produce, name="mloci-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = pending.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
