"""The one RFC 3339 form mloci writes: UTC with a 'Z', whole seconds unless asked for more."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime, *, fraction: bool = False) -> str:
    """``2026-11-23T00:00:00Z``; with ``fraction``, microseconds when there are any."""
    text = moment.astimezone(UTC).isoformat(timespec="auto" if fraction else "seconds")
    return text.replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))
