"""Runners: load a bundle's model and run it, whatever its framework.

Built in:

- ``onnx`` (also ``onnxruntime``): the bundle's ``.onnx`` file in onnxruntime on the CPU
  (``pip install 'mloci[contract]'``).
- ``sklearn`` (also ``scikit_learn``): a ``.joblib``/``.pkl`` estimator, only with
  ``trust_pickle=True`` (``--trust-pickle``): unpickling runs whatever code the file names.

Other frameworks plug in through the entry-point group ``mloci.runners``: the entry point's
name is the framework name (``manifest.framework`` without its version, e.g. ``torch`` for
``torch-2.5``) and its object a :data:`RunnerFactory`. An installed plugin is preferred over
a built-in runner of the same name::

    [project.entry-points."mloci.runners"]
    torch = "mloci_torch:load"      # def load(root: Path, manifest: BundleManifest) -> Runner
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from mloci.bundle.files import scan
from mloci.bundle.init import guess_framework
from mloci.bundle.manifest import BundleManifest
from mloci.bundle.onnx import TensorInfo, tensor_info
from mloci.errors import MlociError, UsageError

__all__ = [
    "ENTRY_POINT_GROUP",
    "Array",
    "OnnxRunner",
    "PickleRunner",
    "Runner",
    "RunnerFactory",
    "TensorInfo",
    "available_runners",
    "load_runner",
    "numpy_dtype",
]

ENTRY_POINT_GROUP = "mloci.runners"
Array = NDArray[Any]

_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


class Runner(Protocol):
    """A loaded model. ``run`` takes and returns arrays by tensor name."""

    @property
    def name(self) -> str: ...

    def inputs(self) -> tuple[TensorInfo, ...]: ...

    def outputs(self) -> tuple[TensorInfo, ...]: ...

    def run(self, feeds: Mapping[str, Array]) -> dict[str, Array]: ...

    def versions(self) -> dict[str, str]:
        """Versions of the runtime libraries, for the test report's environment."""
        ...


RunnerFactory = Callable[[Path, BundleManifest], Runner]


def numpy_dtype(dtype: str) -> np.dtype[Any]:
    """The numpy dtype for a manifest dtype name."""
    if dtype == "string":
        return np.dtype(object)
    if dtype == "bfloat16":
        raise UsageError("bfloat16 arrays cannot be built with numpy; give .npz inputs of another dtype")
    return np.dtype(dtype)


def _model_file(root: Path, manifest: BundleManifest, suffixes: tuple[str, ...]) -> Path:
    files, _ = scan(root)
    found = [f.path for f in files if f.path.lower().endswith(suffixes)]
    listed = [path for path in manifest.files if path in found]
    chosen = listed or found
    if not chosen:
        raise UsageError(f"{root} holds no {' or '.join(suffixes)} model file")
    if len(chosen) > 1 and not listed:
        raise UsageError(
            f"{root} holds several model files ({', '.join(chosen)})",
            hint="list the one to test first in the manifest's 'files'",
        )
    return root / chosen[0]


class OnnxRunner:
    """An ONNX model in onnxruntime's CPU execution provider."""

    name = "onnxruntime"

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime  # noqa: PLC0415  (heavy; only when a model runs)
        except ImportError:
            raise UsageError(
                "running ONNX models needs onnxruntime", hint="pip install 'mloci[contract]'"
            ) from None
        self._ort = onnxruntime
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad models
            message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise MlociError(f"onnxruntime cannot load {path.name}: {message}") from exc

    def inputs(self) -> tuple[TensorInfo, ...]:
        return tuple(tensor_info(a) for a in self._session.get_inputs())

    def outputs(self) -> tuple[TensorInfo, ...]:
        return tuple(tensor_info(a) for a in self._session.get_outputs())

    def run(self, feeds: Mapping[str, Array]) -> dict[str, Array]:
        names = [o.name for o in self._session.get_outputs()]
        try:
            values = self._session.run(names, dict(feeds))
        except Exception as exc:
            message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise MlociError(f"onnxruntime failed to run the model: {message}") from exc
        return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": str(self._ort.__version__), "numpy": np.__version__}


class PickleRunner:
    """A scikit-learn estimator saved with joblib or pickle (loading it runs code from the file).

    scikit-learn estimators carry no tensor names: the manifest's first input feeds ``predict``;
    its first output receives ``predict``'s result and its second ``predict_proba``'s.
    """

    name = "scikit-learn"

    def __init__(self, path: Path, manifest: BundleManifest) -> None:
        try:
            import joblib  # noqa: PLC0415
        except ImportError:
            raise UsageError(
                "loading pickled estimators needs joblib", hint="pip install scikit-learn"
            ) from None
        try:
            self._model = joblib.load(path)
        except Exception as exc:
            raise MlociError(f"cannot unpickle {path.name}: {type(exc).__name__}: {exc}") from exc
        if not hasattr(self._model, "predict"):
            raise UsageError(f"{path.name} holds a {type(self._model).__name__}, which has no predict()")
        self._manifest = manifest

    def inputs(self) -> tuple[TensorInfo, ...]:
        name = self._manifest.inputs[0].name if self._manifest.inputs else "input"
        n_features = getattr(self._model, "n_features_in_", None)
        return (TensorInfo(name, "float64", (None, int(n_features) if n_features else None)),)

    def outputs(self) -> tuple[TensorInfo, ...]:
        names = [o.name for o in self._manifest.outputs] or ["label", "probabilities"]
        outputs = [TensorInfo(names[0], "int64", (None,))]
        if hasattr(self._model, "predict_proba") and len(names) > 1:
            classes = getattr(self._model, "classes_", None)
            outputs.append(
                TensorInfo(names[1], "float64", (None, len(classes) if classes is not None else None))
            )
        return tuple(outputs)

    def run(self, feeds: Mapping[str, Array]) -> dict[str, Array]:
        (x,) = feeds.values()
        outputs = self.outputs()
        result = {outputs[0].name: np.asarray(self._model.predict(x))}
        if len(outputs) > 1:
            result[outputs[1].name] = np.asarray(self._model.predict_proba(x))
        return result

    def versions(self) -> dict[str, str]:
        return {"scikit-learn": version("scikit-learn"), "numpy": np.__version__}


def _load_onnx(root: Path, manifest: BundleManifest) -> Runner:
    return OnnxRunner(_model_file(root, manifest, (".onnx",)))


def _plugin(framework: str) -> RunnerFactory | None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == framework:
            try:
                factory: RunnerFactory = entry.load()
            except Exception as exc:
                raise MlociError(
                    f"the {framework!r} runner plugin ({entry.value}) failed to load: {exc}"
                ) from exc
            return factory
    return None


def available_runners() -> dict[str, str]:
    """Framework name → where its runner comes from (built-in, or the plugin's entry point)."""
    found = {"onnx": "built-in", "onnxruntime": "built-in", "sklearn": "built-in (--trust-pickle)"}
    found["scikit_learn"] = found["sklearn"]
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry.value
    return found


def load_runner(root: Path, manifest: BundleManifest, *, trust_pickle: bool = False) -> Runner:
    """The runner for the bundle at ``root``: a plugin for its framework, else a built-in one."""
    framework = manifest.framework_name or guess_framework(root)
    if framework is None:
        raise UsageError(
            f"cannot tell the framework of {root}", hint="set 'framework' in manifest.json, e.g. 'onnx-1.17'"
        )
    factory = _plugin(framework)
    if factory is not None:
        return factory(root, manifest)
    if framework in ("onnx", "onnxruntime"):
        return _load_onnx(root, manifest)
    if framework in ("sklearn", "scikit_learn", "scikit-learn"):
        path = _model_file(root, manifest, _PICKLE_SUFFIXES)
        if not trust_pickle:
            raise UsageError(
                f"{path.name} is a pickle: loading it runs any code it contains",
                hint="pass --trust-pickle only for bundles from a source you trust",
            )
        return PickleRunner(path, manifest)
    raise UsageError(
        f"no runner for framework {framework!r}",
        hint=f"install a plugin that registers it in the {ENTRY_POINT_GROUP!r} entry-point group",
    )
