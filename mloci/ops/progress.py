"""How operations report transfer progress without knowing who is watching."""

from __future__ import annotations

from typing import Protocol

from mloci.types.manifest import Descriptor


class TransferListener(Protocol):
    """Receives transfer events; called from worker threads, so implementations must be thread-safe."""

    def begin(self, total_bytes: int, blobs: int) -> None: ...

    def blob_started(self, descriptor: Descriptor, label: str) -> None: ...

    def advance(self, descriptor: Descriptor, n: int) -> None: ...

    def blob_finished(self, descriptor: Descriptor, *, skipped: bool) -> None: ...

    def end(self) -> None: ...


class Silent:
    """The listener used when nobody watches (JSON output, no TTY, -q)."""

    def begin(self, total_bytes: int, blobs: int) -> None:
        return None

    def blob_started(self, descriptor: Descriptor, label: str) -> None:
        return None

    def advance(self, descriptor: Descriptor, n: int) -> None:
        return None

    def blob_finished(self, descriptor: Descriptor, *, skipped: bool) -> None:
        return None

    def end(self) -> None:
        return None
