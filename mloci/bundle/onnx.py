"""An ONNX model's own signature, read with onnxruntime when it is installed (``mloci[contract]``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# onnxruntime's tensor element types → the manifest's dtype names.
ONNX_DTYPES = {
    "float": "float32", "double": "float64", "float16": "float16", "bfloat16": "bfloat16",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "bool": "bool", "string": "string", "complex64": "complex64", "complex128": "complex128",
}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    """One input or output as the model itself declares it; a str or None dimension is dynamic."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


def tensor_info(arg: Any) -> TensorInfo:
    """An onnxruntime ``NodeArg`` as a :class:`TensorInfo`."""
    kind = str(arg.type)
    element = kind[len("tensor(") : -1] if kind.startswith("tensor(") else kind
    shape = tuple(d if isinstance(d, int | str) else None for d in (arg.shape or []))
    return TensorInfo(str(arg.name), ONNX_DTYPES.get(element, element), shape)


def read_signature(path: Path) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]] | None:
    """(inputs, outputs) of the ONNX model at ``path``; None without onnxruntime or for a bad model."""
    try:
        import onnxruntime  # noqa: PLC0415  (optional and heavy)
    except ImportError:
        return None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception:  # onnxruntime raises its own types for unreadable models; init then says nothing
        return None
    return (
        tuple(tensor_info(a) for a in session.get_inputs()),
        tuple(tensor_info(a) for a in session.get_outputs()),
    )
