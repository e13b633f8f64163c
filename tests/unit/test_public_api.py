"""The public Python API: the documented names, docstrings, typed results, and the layering under it."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import typing
from pathlib import Path

import pytest
from helpers import REPO_ROOT

import mloci
from mloci.client import Client

DOC = REPO_ROOT / "docs" / "python-api.md"
FREE_FORM = {"annotations", "extensions", "config"}  # free-form by design


def documented_names() -> list[str]:
    text = DOC.read_text()
    block = text.split("<!-- public-api -->")[1].split("<!-- /public-api -->")[0]
    return sorted(re.findall(r"`([^`]+)`", block))


def test_all_is_the_documented_list() -> None:
    assert sorted(mloci.__all__) == documented_names()


@pytest.mark.parametrize("name", [n for n in mloci.__all__ if n != "__version__"])
def test_every_public_name_resolves_and_has_a_docstring(name: str) -> None:
    value = getattr(mloci, name)
    assert inspect.getdoc(value), f"mloci.{name} has no docstring"


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError):
        mloci.no_such_thing  # noqa: B018


@functools.cache
def _namespace() -> dict[str, object]:
    """Every name the API's annotations may use (many are imported for type checking only)."""
    import importlib
    import pkgutil

    names: dict[str, object] = {}
    for package in ("mloci.types", "mloci.ops", "mloci.bundle", "mloci.store", "mloci.contract"):
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__, f"{package}."):
            names.update(vars(importlib.import_module(info.name)))
    names.update(vars(importlib.import_module("mloci.project")))
    names.update(vars(importlib.import_module("mloci.client")))
    return names


def _mentions_any_dict(hint: object) -> bool:
    if typing.get_origin(hint) is dict and typing.get_args(hint)[1:] == (typing.Any,):
        return True
    return any(_mentions_any_dict(arg) for arg in typing.get_args(hint))


def test_client_methods_take_keyword_options_and_return_typed_values() -> None:
    namespace = _namespace()
    for name, method in inspect.getmembers(Client, inspect.isfunction):
        if name.startswith("_"):
            continue
        assert inspect.getdoc(method), name
        hints = typing.get_type_hints(method, globalns=namespace)
        for param, hint in hints.items():
            assert not _mentions_any_dict(hint), f"Client.{name}({param}) is dict[str, Any]"
        positional = [
            p for p in inspect.signature(method).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        assert len(positional) <= 4, f"Client.{name} takes too many positional arguments"


@pytest.mark.parametrize(
    "name",
    ["Artifact", "ArtifactFile", "PushResult", "PullResult", "ModelVersion", "Diff", "PromotionResult",
     "History", "HistoryEntry", "TagResult", "CopyResult", "ValidationReport"],
)  # fmt: skip
def test_results_carry_no_untyped_dicts(name: str) -> None:
    cls = getattr(mloci, name)
    hints = typing.get_type_hints(
        cls, globalns={**_namespace(), **vars(__import__(cls.__module__, fromlist=["_"]))}
    )
    for field in dataclasses.fields(cls):
        if field.name in FREE_FORM:
            continue
        assert not _mentions_any_dict(hints[field.name]), f"{name}.{field.name} is dict[str, Any]"


def test_the_function_and_the_client_method_are_the_same_call() -> None:
    assert mloci.push.__func__ is Client.push  # type: ignore[attr-defined]
    assert mloci.push.__self__ is mloci.default_client()  # type: ignore[attr-defined]


# -- the architecture under the API -----------------------------------------------------------

PACKAGE = REPO_ROOT / "mloci"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_schemas_import_nothing_from_ops() -> None:
    assert not [m for m in imports_of(PACKAGE / "schemas.py") if m.startswith("mloci.ops")]


def test_ops_ask_for_capabilities_not_adapter_classes() -> None:
    for path in sorted((PACKAGE / "ops").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"isinstance\([^)]*(LayoutStore|RegistryStore)", text), path.name
        assert "RegistryStore(" not in text and "LayoutStore(" not in text, path.name


@pytest.mark.parametrize("layer", ["types", "store", "bundle", "trust"])
def test_lower_layers_never_import_upward(layer: str) -> None:
    upward = (
        "mloci.ops",
        "mloci.cli",
        "mloci.client",
        "mloci._api",
        "mloci.pyindex",
        "mloci.catalog",
        "mloci.web",
    )
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        bad = [m for m in imports_of(path) if m.startswith(upward)]
        assert not bad, f"{path.relative_to(REPO_ROOT)} imports {bad}"


def test_the_error_tree_in_the_docs_matches_the_exit_codes() -> None:
    text = DOC.read_text()
    for name in ("UsageError", "BundleInvalidError", "NotFoundError", "AuthError", "IntegrityError",
                 "ConflictError", "UnavailableError", "RegistryError", "UnsupportedError", "PolicyError"):  # fmt: skip
        error = getattr(mloci, name)
        assert issubclass(error, mloci.MlociError)
        assert re.search(rf"{name}\s+{error.exit_code}\b", text), name
