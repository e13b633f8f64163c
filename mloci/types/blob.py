"""A blob to upload: its descriptor and where its bytes come from (a file or memory)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mloci.types.manifest import Descriptor


@dataclass(frozen=True)
class Blob:
    """Exactly one of ``path``, ``data`` or ``opener`` (a stream, e.g. from another store) gives the bytes."""

    descriptor: Descriptor
    path: Path | None = None
    data: bytes | None = None
    opener: Callable[[], BinaryIO] | None = None

    @classmethod
    def of_bytes(cls, media_type: str, data: bytes) -> Blob:
        return cls(Descriptor.of_bytes(media_type, data), data=data)

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.opener is not None:
            return self.opener()
        if self.path is None:
            raise ValueError("blob has neither a path nor data")
        return self.path.open("rb")
