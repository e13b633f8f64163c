"""Bounded parallel transfers that stop promptly when one fails or the user presses Ctrl-C."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mloci.errors import MlociError

T = TypeVar("T")
R = TypeVar("R")


class Cancelled(MlociError):
    """Raised inside a worker when a sibling failed or the user interrupted."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("transfer cancelled")


def run_all(
    work: Callable[[T, CancelToken], R],
    items: Sequence[T],
    concurrency: int,
    token: CancelToken | None = None,
) -> list[R]:
    """``work(item, token)`` for every item, at most ``concurrency`` at once, results in order.

    Workers call ``token.check()`` between chunks; on the first failure (or KeyboardInterrupt in
    the caller) the token is cancelled so the others stop instead of finishing multi-GB transfers.
    """
    token = token or CancelToken()
    if concurrency <= 1 or len(items) <= 1:
        return [work(item, token) for item in items]
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="mloci-transfer")
    try:
        futures = [pool.submit(work, item, token) for item in items]
        return [future.result() for future in futures]
    except BaseException:
        token.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
