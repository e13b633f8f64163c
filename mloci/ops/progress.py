"""How operations report transfer progress without knowing who is watching."""

from __future__ import annotations

from typing import Protocol


class TransferListener(Protocol):
    """Receives transfer events keyed by a string (a digest or a file path).

    Called from worker threads, so implementations must be thread-safe.
    """

    def begin(self, total_bytes: int, items: int) -> None: ...

    def started(self, key: str, label: str, size: int) -> None: ...

    def advance(self, key: str, n: int) -> None: ...

    def finished(self, key: str, *, skipped: bool) -> None: ...

    def end(self) -> None: ...


class Silent:
    """The listener used when nobody watches (JSON output, no TTY, -q)."""

    def begin(self, total_bytes: int, items: int) -> None:
        return None

    def started(self, key: str, label: str, size: int) -> None:
        return None

    def advance(self, key: str, n: int) -> None:
        return None

    def finished(self, key: str, *, skipped: bool) -> None:
        return None

    def end(self) -> None:
        return None
