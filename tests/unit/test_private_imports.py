"""Use cases do not reach into each other's private helpers: a shared helper has a public name.

A ``from mloci.ops.x import _helper`` in another module ties two use cases together through a name
that says "internal"; such helpers get a public home instead (mloci.ops.trustcheck once imported
attest's ``_check_statement``/``_fetch_envelope``). Private *modules* (``mloci.ops._retry``) are
shared on purpose and stay importable.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mloci

PACKAGE = Path(mloci.__file__).parent
CHECKED = ("ops", "trust")


def _private_imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mloci."):
            last = (node.module or "").rsplit(".", 1)[-1]
            for alias in node.names:
                if alias.name.startswith("_") and not last.startswith("_"):
                    found.append(f"{path.relative_to(PACKAGE.parent)}: {node.module}.{alias.name}")
    return found


def test_ops_and_trust_import_no_private_names_from_other_modules() -> None:
    offenders = [
        line
        for folder in CHECKED
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for line in _private_imports(path)
    ]
    assert offenders == []
