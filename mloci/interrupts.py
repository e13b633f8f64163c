"""SIGTERM handled like Ctrl-C, and short sections that an interruption must not split.

Kubernetes stops a pod and CI runners cancel a job with SIGTERM; Python's default for it is
to die on the spot, skipping every ``finally``: staging directories and upload sessions were
left behind. :func:`handle_signals` makes SIGTERM raise :class:`Terminated` instead, so the
same cleanup as for Ctrl-C runs and the CLI exits 143 (128 + 15, what shells report).

:func:`deferred` holds SIGINT and SIGTERM back for a few renames (publishing a pull): the
signal takes effect right after, so an interrupted pull leaves the old files or the new
ones, never a mix. SIGKILL cannot be caught; see :mod:`mloci.leftovers` for what the next
run sweeps.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt, so only cleanup code sees it."""


_state: dict[str, Any] = {"depth": 0, "pending": None, "terminating": False}


def _raise_for(signum: int) -> None:
    if signum == signal.SIGTERM:
        # One SIGTERM is enough: further ones (a supervisor repeating itself) must not cut the cleanup short.
        _state["terminating"] = True
        raise Terminated
    raise KeyboardInterrupt


def _handler(signum: int, frame: FrameType | None) -> None:
    if signum == signal.SIGTERM and _state["terminating"]:
        return
    if _state["depth"]:
        _state["pending"] = _state["pending"] or signum
        return
    _raise_for(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated`, SIGINT KeyboardInterrupt (both deferrable); restored on exit.

    A no-op outside the main thread, where Python cannot install signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # Only signals that would otherwise stop the process: one its parent set to be ignored
    # (`nohup`, a shell's background job) stays ignored.
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {s: signal.getsignal(s) for s in defaults if signal.getsignal(s) is defaults[s]}
    for signum in previous:
        signal.signal(signum, _handler)
    _state.update(depth=0, pending=None, terminating=False)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Run the block to its end even if SIGINT or SIGTERM arrives; the signal takes effect after it."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        pending = _state["pending"]
        if not _state["depth"] and pending is not None:
            _state["pending"] = None
            _raise_for(pending)
