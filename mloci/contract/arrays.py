"""Golden data: reading named arrays from JSON or ``.npz`` and comparing outputs within tolerances."""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mloci.contract.runners import Array, numpy_dtype
from mloci.errors import UsageError


def load_arrays(path: Path, dtypes: Mapping[str, str] | None = None) -> dict[str, Array]:
    """Named arrays from a JSON object (name → nested lists) or an ``.npz`` (never unpickled).

    ``dtypes`` (name → manifest dtype) converts JSON numbers to what the model expects.
    """
    dtypes = dtypes or {}
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise UsageError(f"{path.name} is not a readable .npz file: {exc}") from None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not document:
        raise UsageError(f"{path.name} must be a JSON object of tensor name → array")
    arrays: dict[str, Array] = {}
    for name, value in document.items():
        dtype = dtypes.get(name)
        try:
            arrays[name] = np.array(value, dtype=numpy_dtype(dtype) if dtype else None)
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"{path.name}: {name!r} is not a rectangular array of {dtype or 'values'}: {exc}"
            ) from None
    return arrays


def _number(value: Any) -> Any:
    """A JSON-safe scalar (numpy scalars → Python; non-finite floats → strings)."""
    item = value.item() if hasattr(value, "item") else value
    if isinstance(item, float) and not math.isfinite(item):
        return str(item)
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    return item


@dataclass(frozen=True)
class Comparison:
    """One output compared with its expected value."""

    output: str
    passed: bool
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...] | None
    expected: Any
    actual: Any
    error: float  # |actual - expected| at the worst element
    tolerance: float
    problem: str | None = None  # a shape or dtype mismatch that made element comparison impossible

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "passed": self.passed,
            "maxAbsError": _number(self.max_abs_error),
            "maxRelError": _number(self.max_rel_error),
            "worst": None
            if self.worst_index is None
            else {
                "index": list(self.worst_index),
                "expected": _number(self.expected),
                "actual": _number(self.actual),
                "error": _number(self.error),
                "tolerance": _number(self.tolerance),
            },
            **({"problem": self.problem} if self.problem else {}),
        }

    def describe(self) -> str:
        """One line: what is off, where, and by how much."""
        if self.problem:
            return f"output {self.output!r}: {self.problem}"
        if self.worst_index is None:
            return f"output {self.output!r}: empty"
        where = f"{self.output}[{', '.join(str(i) for i in self.worst_index)}]"
        if self.passed:
            return f"{where} off by {self.error:.3g} at most (tolerance {self.tolerance:.3g})"
        return (
            f"{where}: expected {_number(self.expected)!r}, got {_number(self.actual)!r}, "
            f"off by {self.error:.3g} (tolerance {self.tolerance:.3g})"
        )


def compare(name: str, actual: Array, expected: Array, *, rtol: float, atol: float) -> Comparison:
    """Element-wise ``|actual - expected| <= atol + rtol * |expected|`` (NaN equals NaN).

    The worst element is the one furthest beyond its tolerance, or, when all are within,
    the one with the largest absolute error.
    """
    if actual.shape != expected.shape:
        return Comparison(
            name, False, math.inf, math.inf, None, None, None, math.inf, atol,
            problem=f"shape {list(actual.shape)}, expected {list(expected.shape)}",
        )  # fmt: skip
    if actual.size == 0:
        return Comparison(name, True, 0.0, 0.0, None, None, None, 0.0, atol)
    numeric = actual.dtype.kind in "biufc" and expected.dtype.kind in "biufc"
    if not numeric:
        equal = actual == expected
        mismatched = np.argwhere(~np.asarray(equal))
        if len(mismatched) == 0:
            return Comparison(name, True, 0.0, 0.0, None, None, None, 0.0, 0.0)
        index = tuple(int(i) for i in mismatched[0])
        return Comparison(
            name, False, math.inf, math.inf, index, expected[index], actual[index], math.inf, 0.0
        )
    a = actual.astype(np.complex128 if actual.dtype.kind == "c" else np.float64)
    e = expected.astype(np.complex128 if expected.dtype.kind == "c" else np.float64)
    both_nan = np.isnan(a) & np.isnan(e)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        diff = np.where(both_nan, 0.0, np.abs(a - e))
        diff = np.where(np.isnan(diff), np.inf, diff)
        tolerance = atol + rtol * np.abs(e)
        relative = np.where(diff == 0, 0.0, diff / np.abs(e))
    excess = diff - tolerance
    failing = excess > 0
    flat = int(np.argmax(np.where(failing, excess, -np.inf))) if failing.any() else int(np.argmax(diff))
    index = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
    return Comparison(
        name,
        not bool(failing.any()),
        float(diff.max()),
        float(np.nanmax(relative)),
        index,
        expected[index],
        actual[index],
        float(diff[index]),
        float(tolerance[index]),
    )
