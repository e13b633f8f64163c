"""PEP 700 ``upload-time`` for registry files: recorded per file layer as ``org.opencontainers.image.created``.

A release manifest is otherwise free of time stamps, so the time is chosen to keep digests
reproducible where the pusher can: ``SOURCE_DATE_EPOCH`` when set, else the commit time of a
clean git work tree the files were pushed from, else the moment of publication (uploads through
the index, the upstream cache). ``docs/wheels.md`` explains the choice.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from mloci.buildenv import git
from mloci.bundle.git import GitState
from mloci.errors import UsageError
from mloci.types.timestamps import now_rfc3339, rfc3339


def parse_time(text: str | None) -> str | None:
    """``text`` (ISO 8601 with a time zone) as RFC 3339 UTC (``…Z``); None when absent or not a time."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return rfc3339(moment, fraction=True)


def push_time(directory: Path, state: GitState | None) -> str:
    """The ``upload-time`` of files pushed from ``directory``: SOURCE_DATE_EPOCH, else the commit
    time of ``state`` when its work tree is clean, else now. UsageError for a malformed epoch."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return rfc3339(datetime.fromtimestamp(int(epoch), tz=UTC))
        except (ValueError, OverflowError, OSError):
            raise UsageError(f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds") from None
    if state is not None and not state.dirty:
        seconds = git(directory, "show", "-s", "--format=%ct", state.sha)
        if seconds and seconds.isdigit():
            return rfc3339(datetime.fromtimestamp(int(seconds), tz=UTC))
    return now_rfc3339()
