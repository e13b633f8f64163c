"""A blob to upload: its descriptor and where its bytes come from (a file or memory)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mloci.types.manifest import Descriptor


@dataclass(frozen=True)
class Blob:
    descriptor: Descriptor
    path: Path | None = None
    data: bytes | None = None

    @classmethod
    def of_bytes(cls, media_type: str, data: bytes) -> Blob:
        return cls(Descriptor.of_bytes(media_type, data), data=data)

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.path is None:
            raise ValueError("blob has neither a path nor data")
        return self.path.open("rb")
