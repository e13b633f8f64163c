"""Reading a bundle's JSON files strictly, with one clear problem for each way they can be wrong.

Stricter than :func:`json.loads`: a duplicate key is refused (which value wins would be a guess),
``NaN``/``Infinity`` are refused (they are not JSON), nesting is bounded, and a byte-order mark or
non-UTF-8 text gets a message that says what to do rather than Python's codec names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mloci.errors import Problem

MAX_DEPTH = 64
MAX_SIZE = 16 << 20
_BOM = b"\xef\xbb\xbf"


class JsonProblem(Exception):
    """The document cannot be used; ``problem`` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _Refused(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"duplicate key {key!r}; keep one (which value wins would be a guess)")
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number; use a finite number or null")


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest in ``value`` (iteratively: no recursion limit to hit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(data: bytes, name: str) -> Any:
    """The JSON value in ``data`` (the contents of the bundle file ``name``), or :class:`JsonProblem`."""
    if data.startswith(_BOM):
        raise JsonProblem(
            Problem(name, "starts with a UTF-8 byte-order mark; remove it (save as UTF-8 without BOM)")
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonProblem(
            Problem(name, f"not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8")
        ) from None
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise JsonProblem(
            Problem(name, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        ) from None
    except _Refused as exc:
        raise JsonProblem(Problem(name, str(exc))) from None
    except RecursionError:
        raise JsonProblem(Problem(name, f"nested more than {MAX_DEPTH} levels deep")) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise JsonProblem(Problem(name, f"invalid JSON: {str(exc).splitlines()[0]}")) from None
    if _depth(value) > MAX_DEPTH:
        raise JsonProblem(Problem(name, f"nested more than {MAX_DEPTH} levels deep"))
    return value


def read_json(path: Path, name: str) -> Any:
    """The JSON value in the bundle file at ``path`` (shown as ``name``), or :class:`JsonProblem`."""
    return read_document(path, name)[0]


def read_document(path: Path, name: str) -> tuple[Any, bytes]:
    """:func:`read_json`, with the exact bytes the value was parsed from."""
    if path.is_dir():
        raise JsonProblem(Problem(name, "is a directory; it must be a JSON file"))
    try:
        size = path.stat().st_size
        if size > MAX_SIZE:
            raise JsonProblem(
                Problem(name, f"larger than {MAX_SIZE >> 20} MiB; keep large data in separate files")
            )
        data = path.read_bytes()
    except OSError as exc:
        raise JsonProblem(Problem(name, f"cannot read: {exc.strerror or exc}")) from None
    return parse_json(data, name), data
