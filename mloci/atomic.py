"""Files appear whole or not at all: write beside the target, flush to disk, rename over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, staging: Path | None = None) -> None:
    """Replace ``path`` with ``data``; a crash leaves the old file or the new one, never a mix.

    ``staging`` is a directory on the same filesystem for the temporary file (default: beside
    ``path``); the temporary file never outlives a failure.
    """
    directory = staging or path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
