"""A file-like view of a blob streaming out of a store, so it can stream into another store."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import AbstractContextManager
from types import TracebackType

from mloci.errors import MlociError


class ChunkReader(io.RawIOBase):
    """Reads through a store's verified chunk iterator; forward-only (seeking back is refused)."""

    def __init__(self, source: AbstractContextManager[Iterator[bytes]]) -> None:
        super().__init__()
        self._source = source
        self._chunks = source.__enter__()
        self._buffer = b""
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or offset != self._position:
            raise MlociError("a streamed blob cannot be re-read; the copy will start this blob again")
        return self._position

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        self._position += len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            self._source.__exit__(None, None, None)
        super().close()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if not self.closed:
            self._source.__exit__(kind, value, traceback)
        super().close()
