"""Upload sessions recorded on disk, so a push killed mid-blob can continue the registry's session.

Before a blob's bytes go out, its upload session URL is written to
``$MLOCI_HOME/uploads/<key>.json`` (atomically, mode 0600) together with the registry, the
repository and what is being uploaded (a digest, or for uploads that hash while sending, the
file's identity: path, size, modification time, inode). After each PATCH the registry accepts,
the record gets the URL it answered with. The next push of the same blob to the same repository
asks the registry where that session stands (``GET`` → ``Range``) and sends only the rest; when
the registry no longer has it, the upload starts over. The record is removed once the blob is
committed or the upload is cancelled, and after a week (when registries have purged the session).

No credential is ever written: the URL is the registry's upload location without any
``user:password@`` part, and tokens live only in memory. (The URL may carry registry-issued
upload state, e.g. distribution's ``_state``; it grants nothing without the user's credentials.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mloci.atomic import write_atomic

# Registries drop unfinished uploads after a while (distribution: uploadpurging, a week by default).
STALE_AFTER = 7 * 24 * 3600
_RECORD = re.compile(r"[0-9a-f]{64}\.json")


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


@dataclass(frozen=True)
class UploadSessions:
    """The records in ``directory``; every method is best effort (a record that cannot be
    written or read only means the upload starts over)."""

    directory: Path

    def _path(self, registry: str, repository: str, subject: str) -> Path:
        key = hashlib.sha256(f"{registry}\n{repository}\n{subject}".encode()).hexdigest()
        return self.directory / f"{key}.json"

    def load(self, registry: str, repository: str, subject: str) -> str | None:
        """The session URL recorded for ``subject`` (a digest or file identity) in that repository."""
        try:
            record = json.loads(self._path(registry, repository, subject).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("version") != 1:
            return None
        if (record.get("registry"), record.get("repository"), record.get("subject")) != (
            registry,
            repository,
            subject,
        ):
            return None
        location = record.get("location")
        return (
            location if isinstance(location, str) and location.startswith(("http://", "https://")) else None
        )

    def save(self, registry: str, repository: str, subject: str, location: str) -> None:
        record = {
            "version": 1,
            "registry": registry,
            "repository": repository,
            "subject": subject,
            "location": _without_userinfo(location),
        }
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._prune()
            write_atomic(
                self._path(registry, repository, subject),
                json.dumps(record, sort_keys=True).encode(),
                mode=0o600,
            )

    def _prune(self) -> None:
        """Remove records older than any registry keeps an upload (only names of the form written here)."""
        cutoff = time.time() - STALE_AFTER
        for entry in os.scandir(self.directory):
            with contextlib.suppress(OSError):
                if _RECORD.fullmatch(entry.name) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    Path(entry.path).unlink()

    def forget(self, registry: str, repository: str, subject: str) -> None:
        with contextlib.suppress(OSError):
            self._path(registry, repository, subject).unlink(missing_ok=True)


def file_subject(path: Path) -> str:
    """What identifies a file's content without reading it: a changed file gets a new upload."""
    info = path.stat()
    return f"file:{os.path.realpath(path)}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
