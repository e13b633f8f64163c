"""The secret the catalog signs its form tokens with: one file shared by every replica, or one per process.

Replicas behind a load balancer without session affinity must agree on it — a page rendered by one
is posted to another — so ``mloci serve --secret-file PATH`` (``MLOCI_SERVE_SECRET_FILE``) reads it
from a file the operator distributes (a Kubernetes secret, say). The file is read once, at start;
one that other users can read, or that holds fewer than :data:`MIN_BYTES` bytes, is refused. Its
bytes are never printed, logged or shown in a repr.
"""

from __future__ import annotations

import secrets
import stat
from pathlib import Path
from typing import Final

from mloci.errors import UsageError

MIN_BYTES: Final = 32
_MAX_BYTES: Final = 64 << 10


def random_secret() -> bytes:
    """A secret of this process alone: its tokens outlive no restart and pass no other replica."""
    return secrets.token_bytes(MIN_BYTES)


def read_secret(path: Path) -> bytes:
    """The secret in ``path`` (its bytes, surrounding whitespace stripped); UsageError when it is
    missing, readable by every user, or shorter than :data:`MIN_BYTES` bytes."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"--secret-file {path}: not a regular file")
        if mode & stat.S_IROTH:
            raise UsageError(
                f"--secret-file {path}: readable by every user",
                hint=f"chmod o-rwx {path}; a Kubernetes secret volume: defaultMode 0440",
            )
        with path.open("rb") as handle:
            data = handle.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"--secret-file {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_BYTES:
        raise UsageError(f"--secret-file {path}: larger than {_MAX_BYTES} bytes; is it the right file?")
    data = data.strip()
    if len(data) < MIN_BYTES:
        raise UsageError(
            f"--secret-file {path}: holds {len(data)} bytes, at least {MIN_BYTES} are needed",
            hint="e.g. head -c 48 /dev/urandom | base64 > FILE",
        )
    return data
