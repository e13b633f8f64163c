"""Read-merge-write against a registry without conditional writes: retry until our change survives."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from mloci.errors import ConflictError

T = TypeVar("T")

MAX_ROUNDS = 10


def until_kept(attempt: Callable[[], T | None], *, what: str, hint: str, rounds: int = MAX_ROUNDS) -> T:
    """Call ``attempt`` (read, merge, write, check that the write survived) until it returns a result.

    Raises ConflictError (temporary: running the command again may succeed) when other writers
    kept replacing the document for ``rounds`` attempts; never gives up silently.
    """
    for _ in range(rounds):
        result = attempt()
        if result is not None:
            return result
    raise ConflictError(f"{what} kept being rewritten by other writers", hint=hint, temporary=True)
