"""Parsing JSON that came from outside (a registry, a store on disk, a token service).

Python's parser recurses: ``[[[[…`` nested a few thousand deep raises RecursionError, which
callers expecting "malformed JSON" (ValueError) do not catch. Here it is a ValueError like any
other malformed document.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes | bytearray, **kwargs: Any) -> Any:
    """:func:`json.loads`, with nesting too deep for Python's parser reported as ValueError."""
    try:
        return json.loads(data, **kwargs)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
