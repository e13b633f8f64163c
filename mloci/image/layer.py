"""Reproducible image layers: the same files give the same tar, the same gzip, the same digests.

Entries are sorted, parent directories are written explicitly, and every header is fixed:
mtime from the source date, uid/gid 0 with empty owner names, no PAX extras beyond what long
names need. gzip carries no timestamp or file name. The layer streams to a temporary file while
both the diff ID (uncompressed) and the digest (compressed) are computed: memory stays flat
whatever the model size.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mloci import leftovers
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor

_BLOCK = 1 << 20
LAYER_PREFIX = "layer-"


@dataclass(frozen=True)
class Entry:
    """One regular file in the layer: where it goes, and where its bytes come from."""

    path: str  # absolute path inside the image, e.g. /models/churn/model.onnx
    source: Path
    mode: int = 0o644


@dataclass(frozen=True)
class ImageLayer:
    blob: Blob  # the compressed layer (a temporary file the caller removes)
    diff_id: Digest

    def remove(self) -> None:
        if self.blob.path is not None:
            self.blob.path.unlink(missing_ok=True)


class _Hashing(io.RawIOBase):
    """A write-through file that hashes what passes."""

    def __init__(self, sink: BinaryIO) -> None:
        super().__init__()
        self._sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.size += len(data)
        return self._sink.write(data)


def _directories(paths: Iterable[str]) -> list[str]:
    found: set[str] = set()
    for path in paths:
        for parent in PurePosixPath(path).parents:
            if str(parent) not in ("/", "."):
                found.add(str(parent))
    return sorted(found)


def _header(name: str, *, kind: bytes, mode: int, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name.lstrip("/"))
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _FileReader(io.RawIOBase):
    """Reads exactly ``size`` bytes; a file that changed size while layering is an error, not a bad tar."""

    def __init__(self, handle: io.RawIOBase | io.BufferedIOBase, size: int) -> None:
        super().__init__()
        self._handle = handle
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)[: self._left]
        n = self._handle.readinto(view) if view.nbytes else 0
        if n == 0 and self._left:
            raise OSError("file shrank while it was being layered")
        self._left -= n or 0
        return n or 0


def build_layer(
    entries: Iterable[Entry], *, workdir: Path, mtime: int = 0, compress: bool = True, level: int = 6
) -> ImageLayer:
    """Write a reproducible tar(+gzip) layer of ``entries`` under ``workdir``; return it with its digests."""
    files = sorted(entries, key=lambda e: e.path)
    workdir.mkdir(parents=True, exist_ok=True)
    # Named after this process, so what a SIGKILL leaves is swept by `mloci gc` (mloci.leftovers).
    fd, tmp = tempfile.mkstemp(dir=workdir, prefix=leftovers.owned_prefix(LAYER_PREFIX))
    target = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as raw:
            compressed = _Hashing(raw)
            zipped: BinaryIO = (
                gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=level)  # type: ignore[assignment]
                if compress
                else compressed
            )
            plain = _Hashing(zipped)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_BLOCK) as tar:
                for directory in _directories(e.path for e in files):
                    tar.addfile(
                        _header(directory + "/", kind=tarfile.DIRTYPE, mode=0o755, size=0, mtime=mtime)
                    )
                for entry in files:
                    size = entry.source.stat().st_size
                    info = _header(entry.path, kind=tarfile.REGTYPE, mode=entry.mode, size=size, mtime=mtime)
                    with entry.source.open("rb", buffering=0) as handle:
                        tar.addfile(info, _FileReader(handle, size))
            if compress:
                zipped.close()
        media_type = mediatype.OCI_LAYER_TAR_GZIP if compress else mediatype.OCI_LAYER_TAR
        descriptor = Descriptor(
            media_type=media_type,
            digest=Digest("sha256", compressed.hash.hexdigest()),
            size=compressed.size,
        )
        return ImageLayer(Blob(descriptor, path=target), Digest("sha256", plain.hash.hexdigest()))
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def iter_entries(root: Path, prefix: str) -> Iterator[Entry]:
    """Every regular file under ``root`` as an entry below ``prefix``; executables keep their x bit."""
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(root).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in relative.split("/")):
            continue
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        yield Entry(f"{prefix.rstrip('/')}/{relative}", path, mode)
