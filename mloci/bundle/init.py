"""``mloci init``: a starter manifest.json, guessing framework and format from the files present."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from mloci.bundle.files import scan
from mloci.bundle.manifest import MANIFEST_FILENAME, BundleManifest
from mloci.bundle.onnx import read_signature
from mloci.bundle.pack import manifest_document
from mloci.errors import ConflictError, UsageError

# File suffix → framework, most specific first; the first match in path order wins.
_FRAMEWORKS = (
    (".onnx", "onnx"),
    (".ort", "onnxruntime"),
    (".safetensors", "safetensors"),
    (".gguf", "gguf"),
    (".pt", "pytorch"),
    (".pth", "pytorch"),
    (".keras", "keras"),
    (".h5", "keras"),
    (".tflite", "tflite"),
    (".pb", "tensorflow"),
    (".xgb", "xgboost"),
    (".ubj", "xgboost"),
    (".lgb", "lightgbm"),
    (".cbm", "catboost"),
    (".joblib", "scikit-learn"),
    (".pkl", "scikit-learn"),
    (".mlmodel", "coreml"),
)


def guess_framework(root: Path) -> str | None:
    files, _ = scan(root)
    suffixes = {Path(f.path).suffix.lower() for f in files}
    for suffix, framework in _FRAMEWORKS:
        if suffix in suffixes:
            return framework
    return None


def onnx_signature(root: Path) -> dict[str, object]:
    """``inputs`` and ``outputs`` read from the bundle's one ONNX model (needs onnxruntime), or {}."""
    files, _ = scan(root)
    models = [f.path for f in files if f.path.lower().endswith(".onnx")]
    signature = read_signature(root / models[0]) if len(models) == 1 else None
    if signature is None:
        return {}
    inputs, outputs = signature
    return {"inputs": [t.to_json() for t in inputs], "outputs": [t.to_json() for t in outputs]}


def guess_tests(root: Path, framework: str | None, *, signature: bool = False) -> list[dict[str, object]]:
    """Starter ``tests``: a golden test when tests/golden_inputs.* and tests/golden_outputs.* exist;
    a signature test when the signature was read from the model; for ONNX (which ``mloci test``
    runs out of the box) an unbounded latency test."""
    tests: list[dict[str, object]] = []
    for suffix in (".json", ".npz"):
        inputs, expected = f"tests/golden_inputs{suffix}", f"tests/golden_outputs{suffix}"
        if (root / inputs).is_file() and (root / expected).is_file():
            tests.append({"name": "golden", "kind": "golden", "inputs": inputs, "expected": expected})
            break
    if signature:
        tests.append({"name": "signature", "kind": "signature"})
    if framework == "onnx":
        tests.append({"name": "latency", "kind": "latency"})
    return tests


def _name_from(root: Path) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", root.resolve().name.lower()).strip("-")
    return name or "model"


def init_bundle(root: Path, *, name: str | None = None, version: str = "0.1.0", force: bool = False) -> Path:
    """Write ``root/manifest.json`` with name, version and a guessed framework; return its path.

    For an ONNX model (with onnxruntime installed) its inputs and outputs are read from the model
    and a signature test added; golden files under ``tests/`` become a golden test."""
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    path = root / MANIFEST_FILENAME
    if path.exists() and not force:
        raise ConflictError(f"{path} already exists", hint="edit it, or pass --force to start over")
    document: dict[str, object] = {"name": name or _name_from(root), "version": version}
    framework = guess_framework(root)
    if framework:
        document["framework"] = framework
    declared = onnx_signature(root) if framework == "onnx" else {}
    document.update(declared)
    tests = guess_tests(root, framework, signature=bool(declared))
    if tests:
        document["tests"] = tests
    try:
        manifest = BundleManifest.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise UsageError(
            f"cannot start a manifest: {field}: {first['msg'].removeprefix('Value error, ')}"
        ) from None
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(manifest_document(manifest))
    tmp.replace(path)
    return path
