"""JSON values as types: for documents that are free-form by design (configs, extensions)."""

from __future__ import annotations

from typing import TypeAlias, Union

# Union (not |): the recursive references are strings, which | cannot combine at run time.
JSONValue: TypeAlias = Union[dict[str, "JSONValue"], list["JSONValue"], str, int, float, bool, None]  # noqa: UP007
JSONObject: TypeAlias = dict[str, JSONValue]
