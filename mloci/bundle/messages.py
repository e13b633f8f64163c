"""Turning pydantic's validation errors on ``manifest.json`` into problems a person can act on.

pydantic reports a pattern mismatch as the raw regex, a value that fits no member of a union
once per member (``metrics.accuracy.int``, ``metrics.accuracy.float``), and an unknown key
without a suggestion. Here each becomes one line that says what is allowed, with an example.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from mloci.errors import Problem

# The tags pydantic appends to a location for each member of a union, and what they mean.
_UNION_MEMBERS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "constrained-str": "a non-empty string",
    "bool": "true or false",
    "none": "null",
}

_QUANTITY = "must be a Kubernetes quantity such as '2', '500m' or '4Gi'"
# Field name -> what its pattern allows, in words.
_PATTERNS = {
    "name": "must be lowercase letters and digits, separated by single '.', '_' or '-' (no spaces or capitals)",
    "framework": "must be a lowercase framework name, optionally followed by '-<version>', "
    "e.g. 'onnx-1.15' or 'pytorch-2.3'",
    "git_sha": "must be a commit SHA: 7 to 64 lowercase hex digits",
    "python": "must be a Python 3 version such as '3.11' or '3.11.4'",
    "retention": "must be an ISO 8601 duration such as 'P365D' or 'P1Y6M'",
    "cpu": _QUANTITY,
    "memory": _QUANTITY,
    "min_memory": _QUANTITY,
}


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def json_type(value: Any) -> str:
    """How a JSON value is named in a message: 'null', 'an array', 'the string \'x\''…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the field at ``loc`` (its last part), following nested models."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if current is None:
            return None
        if isinstance(part, int):
            continue  # a list index: the item type was already taken below
        field = current.model_fields.get(part)
        current = _inner_model(field.annotation) if field is not None else None
    return current


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _suggestion(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    holder = _model_at(model, loc)
    key = loc[-1]
    if holder is None or not isinstance(key, str):
        return ""
    names = [field.alias or name for name, field in holder.model_fields.items()]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def _name_example(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    fixed = re.sub(r"[^a-z0-9._-]+", "-", value.lower()).strip("-._")
    fixed = re.sub(r"[-._]*([._])[-._]*", r"\1", fixed)
    return f"; try {fixed!r}" if fixed and fixed != value else ", e.g. 'churn-model'"


def problems_from(error: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """One problem per wrong value in ``error`` (raised validating ``model``)."""
    problems: list[Problem] = []
    unions: dict[tuple[int | str, ...], list[ErrorDetails]] = {}
    for detail in error.errors():
        loc = tuple(detail["loc"])
        union_member = isinstance(loc[-1], str) and loc[-1] in _UNION_MEMBERS if loc else False
        if len(loc) > 1 and union_member and detail["type"].endswith("_type"):
            if loc[:-1] not in unions:
                unions[loc[:-1]] = []
                problems.append(Problem(_loc(loc[:-1]), ""))  # placeholder, keeps the order
            unions[loc[:-1]].append(detail)
            continue
        message = detail["msg"].removeprefix("Value error, ")
        kind = detail["type"]
        field = loc[-1] if loc else ""
        if kind == "extra_forbidden":
            message = f"unknown field{_suggestion(model, loc)} (free-form data belongs under 'extensions')"
        elif kind == "string_pattern_mismatch" and isinstance(field, str) and field in _PATTERNS:
            message = _PATTERNS[field] + (_name_example(detail["input"]) if field == "name" else "")
            message += f"; got {json_type(detail['input'])}" if field != "name" else ""
        problems.append(Problem(_loc(loc), message))
    for index, problem in enumerate(problems):
        if problem.message:
            continue
        loc_details = next(details for loc, details in unions.items() if _loc(loc) == problem.path)
        members = [str(d["loc"][-1]) for d in loc_details]
        wanted = (
            "a number"
            if {"int", "float"} <= set(members)
            else " or ".join(dict.fromkeys(_UNION_MEMBERS[m] for m in members))
        )
        problems[index] = Problem(problem.path, f"must be {wanted}, not {json_type(loc_details[0]['input'])}")
    return problems
