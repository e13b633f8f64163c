"""Rendering for the CLI: JSON on stdout, human text, and progress bars on a TTY."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Sequence
from typing import Any

import click

from mloci.errors import Problem
from mloci.ops.progress import Silent, TransferListener
from mloci.types.text import escape_controls

# What json.dumps(ensure_ascii=False) leaves raw but a terminal may act on (C1 controls such as
# CSI U+009B, bidi overrides, line separators) or cannot encode (lone surrogates).
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: object) -> str:
    """``str(text)`` safe for a terminal: control characters (ESC, newline, C1…), bidi overrides and
    undecodable bytes escaped as ``\\xNN``/``\\uNNNN``. Everything printed that may hold text from a
    registry, an artifact or a file name goes through here, so no remote byte drives the terminal."""
    return escape_controls(str(text))


def emit_json(value: Any) -> None:
    text = json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False)
    # Still the same JSON value: these characters only occur inside strings, where \uNNNN means them.
    click.echo(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def error_json(
    message: str, hint: str | None, exit_code: int, problems: Sequence[Problem] = ()
) -> dict[str, Any]:
    """The ``--json`` form of an error: ``{"error": {"message", "hint", "exitCode"}}`` (+ problems)."""
    error: dict[str, Any] = {"message": message, "hint": hint, "exitCode": exit_code}
    if problems:
        error["problems"] = [{"path": p.path, "message": p.message} for p in problems]
    return {"error": error}


def emit_error(message: str, hint: str | None, exit_code: int, problems: Sequence[Problem] = ()) -> None:
    """Print an error as one JSON object on stdout (the line on stderr is printed by the caller)."""
    emit_json(error_json(message, hint, exit_code, problems))


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


class _Bars:
    """Per-blob bars plus a total, drawn on stderr; thread-safe as rich's Progress is."""

    def __init__(self, verb: str) -> None:
        # rich costs ~50 ms to import: only pay for it when bars are drawn.
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._verb = verb
        self._progress = Progress(
            # Labels are file paths, some from a registry: never read them as rich markup ("[link=…]").
            TextColumn("{task.description}", justify="left", markup=False),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._sizes: dict[str, int] = {}
        self._total: Any = None
        self._lock = threading.Lock()

    def begin(self, total_bytes: int, items: int) -> None:
        self._progress.start()
        self._total = self._progress.add_task(f"{self._verb} {items} files", total=total_bytes)

    def started(self, key: str, label: str, size: int) -> None:
        with self._lock:
            self._sizes[key] = size
            self._tasks[key] = self._progress.add_task(f"  {label}", total=size)

    def advance(self, key: str, n: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self._progress.advance(task, n)
        if self._total is not None:
            self._progress.advance(self._total, n)

    def finished(self, key: str, *, skipped: bool) -> None:
        task = self._tasks.get(key)
        if task is None:
            return
        if skipped and self._total is not None:
            self._progress.advance(self._total, self._sizes.get(key, 0))
        self._progress.update(task, visible=False)

    def end(self) -> None:
        self._progress.stop()


def listener(verb: str, *, quiet: bool) -> TransferListener:
    """Progress bars when a person watches stderr; silence otherwise."""
    if quiet or not sys.stderr.isatty():
        return Silent()
    return _Bars(verb)
