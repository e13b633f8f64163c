"""Copying files into the local store as cheaply as the filesystem allows."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

_FICLONE = 0x40049409  # ioctl: share the source's extents copy-on-write (btrfs, xfs, bcachefs)
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EBADF)


def fast_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to the new file ``target``: a reflink where possible, else an in-kernel copy
    into preallocated space; bytes never pass through Python."""
    with source.open("rb") as src, target.open("wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
            return
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
        size = os.fstat(src.fileno()).st_size
        if size:
            try:
                os.posix_fallocate(dst.fileno(), 0, size)
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED:
                    raise
        copied = 0
        try:
            while copied < size:
                n = os.copy_file_range(src.fileno(), dst.fileno(), size - copied)
                if n == 0:
                    break
                copied += n
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            src.seek(copied)
            dst.seek(copied)
            shutil.copyfileobj(src, dst, 1 << 20)
            return
        if copied < size:  # the file shrank meanwhile; the identity check after hashing catches it
            shutil.copyfileobj(src, dst, 1 << 20)
