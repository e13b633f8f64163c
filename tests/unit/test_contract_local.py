"""The bundle's contract: the manifest's tests section, the runners and test kinds, cgroup limits."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLE, Runner

from mloci.bundle import inspect_bundle
from mloci.bundle.manifest import BundleManifest
from mloci.contract.arrays import compare, load_arrays
from mloci.contract.environment import check_environment, cpu_limit, memory_limit, quantity
from mloci.contract.run import run_tests


def edit_manifest(bundle: Path, **changes: object) -> None:
    path = bundle / "manifest.json"
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


# -- the manifest ----------------------------------------------------------------------------------


def test_the_example_declares_golden_signature_and_latency_tests() -> None:
    manifest = BundleManifest.model_validate(json.loads((EXAMPLE / "manifest.json").read_text()))
    assert [(t.name, t.kind) for t in manifest.tests] == [
        ("golden", "golden"),
        ("signature", "signature"),
        ("latency", "latency"),
    ]


def test_tests_section_problems_are_reported_with_their_paths(bundle: Path) -> None:
    edit_manifest(
        bundle,
        tests=[
            {"name": "a", "kind": "golden", "inputs": "tests/missing.json", "expected": "../outside.json"},
            {"name": "b", "kind": "fuzz"},
            {"name": "c", "kind": "latency", "iterations": 0},
            {"name": "d", "kind": "command", "run": []},
            {"name": "e", "kind": "signature", "extra": 1},
        ],
    )
    _, problems = inspect_bundle(bundle)
    paths = {p.path for p in problems}
    assert "tests[0].golden.expected" in paths
    assert any(p.startswith("tests[1]") for p in paths)
    assert "tests[2].latency.iterations" in paths
    assert "tests[3].command.run" in paths
    assert "tests[4].signature.extra" in paths


def test_test_names_are_unique_and_golden_files_must_exist(bundle: Path) -> None:
    edit_manifest(bundle, tests=[{"name": "x", "kind": "signature"}, {"name": "x", "kind": "signature"}])
    _, problems = inspect_bundle(bundle)
    assert any("two tests are named 'x'" in p.message for p in problems)
    edit_manifest(
        bundle,
        tests=[
            {"name": "g", "kind": "golden", "inputs": "nope.json", "expected": "tests/golden_outputs.json"}
        ],
    )
    _, problems = inspect_bundle(bundle)
    assert [(p.path, p.message) for p in problems] == [
        ("tests[0].inputs", "'nope.json' is not in the bundle")
    ]


# -- comparing arrays ------------------------------------------------------------------------------


def test_compare_names_the_element_furthest_beyond_its_tolerance() -> None:
    expected = np.array([[0.5, 0.5], [0.25, 0.75]], dtype=np.float64)
    actual = np.array([[0.5, 0.5001], [0.26, 0.75]], dtype=np.float32)
    result = compare("p", actual, expected, rtol=1e-5, atol=1e-6)
    assert not result.passed
    assert result.worst_index == (1, 0)
    assert result.max_abs_error == pytest.approx(0.01, rel=1e-4)
    assert "p[1, 0]: expected 0.25, got" in result.describe()
    assert compare("p", expected, expected, rtol=0, atol=0).passed


def test_compare_shapes_nans_and_strings() -> None:
    shape = compare("y", np.zeros((2, 3)), np.zeros((2, 2)), rtol=0, atol=0)
    assert not shape.passed and shape.describe() == "output 'y': shape [2, 3], expected [2, 2]"
    nan = np.array([math.nan, 1.0])
    assert compare("y", nan, nan.copy(), rtol=0, atol=0).passed
    assert not compare("y", np.array([math.nan, 1.0]), np.array([0.0, 1.0]), rtol=0, atol=1).passed
    words = compare("w", np.array(["a", "b"], dtype=object), np.array(["a", "c"]), rtol=0, atol=0)
    assert not words.passed and words.worst_index == (1,)


def test_golden_files_load_from_json_and_npz(tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"x": [[1, 2], [3, 4]]}')
    assert load_arrays(tmp_path / "in.json", {"x": "float32"})["x"].dtype == np.float32
    np.savez(tmp_path / "in.npz", x=np.arange(4, dtype=np.int64))
    assert load_arrays(tmp_path / "in.npz")["x"].tolist() == [0, 1, 2, 3]
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(Exception, match=r"objects\.npz is not a readable \.npz file"):
        load_arrays(tmp_path / "objects.npz")  # object arrays would need unpickling: refused


# -- running the tests -----------------------------------------------------------------------------


def test_the_example_passes_its_own_tests(mloci: Runner) -> None:
    result = mloci("test", EXAMPLE, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    tests = {t["name"]: t for t in report["tests"]}
    golden = tests["golden"]["measurements"]
    assert golden["maxAbsError"] < 1e-6
    assert {o["output"] for o in golden["outputs"]} == {"label", "probabilities"}
    latency = tests["latency"]["measurements"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= 10
    assert latency["iterations"] == 200 and latency["throughput_per_s"] > 0
    assert report["environment"]["runtime"]["onnxruntime"]


def test_one_changed_expected_value_fails_with_exit_12_naming_the_element(
    bundle: Path, mloci: Runner
) -> None:
    path = bundle / "tests" / "golden_outputs.json"
    expected = json.loads(path.read_text())
    expected["probabilities"][3][1] += 0.001
    path.write_text(json.dumps(expected))
    result = mloci("test", bundle)
    assert result.exit_code == 12
    line = next(line for line in result.stdout.splitlines() if line.startswith("FAIL"))
    assert "golden" in line and "probabilities[3, 1]: expected" in line and "off by 0.001" in line
    assert "PASS  signature" in result.stdout
    assert "1 of 3 tests of churn-model 1.0.0 failed: golden" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_with_another_input_name_fails_the_signature_test(bundle: Path, mloci: Runner) -> None:
    import onnx

    model = onnx.load(str(bundle / "model.onnx"))
    old = model.graph.input[0].name
    model.graph.input[0].name = "inputs"
    for node in model.graph.node:
        node.input[:] = ["inputs" if name == old else name for name in node.input]
    onnx.save(model, str(bundle / "model.onnx"))
    result = mloci("test", bundle, "--only", "signature", "--json")
    assert result.exit_code == 12
    report = json.loads(result.stdout)  # one JSON object: the report, with the error every command gives
    assert report["error"]["exitCode"] == 12 and "failed: signature" in report["error"]["message"]
    (signature,) = report["tests"]
    assert signature["passed"] is False
    assert (
        "input 'features' is declared but the model has no such input (it has 'inputs')"
        in signature["detail"]
    )
    assert (
        "input 'inputs' of the model is not declared in the manifest" in signature["measurements"]["problems"]
    )


def test_declared_dtype_and_shape_must_match_the_model(bundle: Path) -> None:
    edit_manifest(
        bundle,
        inputs=[{"name": "features", "dtype": "float64", "shape": ["batch", 7]}],
        outputs=[{"name": "probabilities", "dtype": "float32", "shape": ["batch", 3]}],
        tests=[{"name": "sig", "kind": "signature"}],
    )
    (result,) = run_tests(bundle).results
    problems = result.measurements["problems"]
    assert problems == [
        "input 'features' is float64 declared, float32 in the model",
        "output 'probabilities': dimension 1 is 3 declared, 2 in the model",
    ]


def test_latency_above_its_bound_fails(bundle: Path) -> None:
    edit_manifest(
        bundle, tests=[{"name": "fast", "kind": "latency", "iterations": 20, "warmup": 2, "p99_ms": 1e-6}]
    )
    (result,) = run_tests(bundle).results
    assert not result.passed and "exceeds 1e-06 ms" in result.detail
    assert result.measurements["bounds"] == {"p50_ms": 2, "p99_ms": 1e-6}  # p50 from runtime.latency_p50_ms


def test_latency_without_golden_inputs_uses_synthetic_ones(bundle: Path) -> None:
    edit_manifest(bundle, tests=[{"name": "lat", "kind": "latency", "batch_size": 64, "iterations": 10}])
    (result,) = run_tests(bundle).results
    assert result.passed and result.measurements["inputs"] == "synthetic"
    assert result.measurements["batchSize"] == 64


def test_a_bundle_without_tests_is_a_usage_error(bundle: Path, mloci: Runner) -> None:
    edit_manifest(bundle, tests=[])
    result = mloci("test", bundle)
    assert result.exit_code == 2 and "declares no tests" in result.stderr


# -- pickles and plugins ---------------------------------------------------------------------------


def _pickle_bundle(tmp_path: Path) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    bundle = tmp_path / "sk"
    (bundle / "tests").mkdir(parents=True)
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    joblib.dump(model, bundle / "model.joblib")
    (bundle / "tests" / "in.json").write_text(json.dumps({"x": x.tolist()}))
    (bundle / "tests" / "out.json").write_text(json.dumps({"label": model.predict(x).tolist()}))
    (bundle / "manifest.json").write_text(
        json.dumps(
            {
                "name": "sk",
                "version": "1.0.0",
                "framework": "sklearn-1.9",
                "inputs": [{"name": "x", "dtype": "float64", "shape": [None, 2]}],
                "outputs": [{"name": "label", "dtype": "int64", "shape": [None]}],
                "tests": [
                    {
                        "name": "golden",
                        "kind": "golden",
                        "inputs": "tests/in.json",
                        "expected": "tests/out.json",
                    },
                    {"name": "signature", "kind": "signature"},
                ],
            }
        )
    )
    return bundle


def test_pickles_load_only_with_trust_pickle(tmp_path: Path, mloci: Runner) -> None:
    bundle = _pickle_bundle(tmp_path)
    refused = mloci("test", bundle)
    assert refused.exit_code == 2
    assert "model.joblib is a pickle: loading it runs any code it contains" in refused.stderr
    assert "--trust-pickle" in refused.stderr
    trusted = mloci("test", bundle, "--trust-pickle")
    assert trusted.exit_code == 0, trusted.stdout + trusted.stderr


def test_a_malicious_pickle_does_not_run_without_trust_pickle(tmp_path: Path, mloci: Runner) -> None:
    import pickle

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (open, (str(marker), "w"))

    bundle = tmp_path / "evil"
    bundle.mkdir()
    (bundle / "model.pkl").write_bytes(pickle.dumps(Exploit()))
    (bundle / "manifest.json").write_text(
        json.dumps({"name": "evil", "version": "1.0.0", "tests": [{"name": "s", "kind": "signature"}]})
    )
    assert mloci("test", bundle).exit_code == 2
    assert not marker.exists()


PLUGIN = """
import numpy as np
from mloci.contract.runners import TensorInfo


class Doubler:
    name = "doubler"

    def inputs(self):
        return (TensorInfo("x", "float32", (None, 2)),)

    def outputs(self):
        return (TensorInfo("y", "float32", (None, 2)),)

    def run(self, feeds):
        return {"y": feeds["x"] * 2}

    def versions(self):
        return {"doubler": "1.0"}


def load(root, manifest):
    return Doubler()
"""


def test_runner_plugins_register_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mloci: Runner
) -> None:
    site = tmp_path / "site"
    info = site / "mloci_doubler-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "mloci_doubler.py").write_text(textwrap.dedent(PLUGIN))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mloci-doubler\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mloci.runners]\ndoubler = mloci_doubler:load\n")
    monkeypatch.syspath_prepend(str(site))
    bundle = tmp_path / "doubled"
    bundle.mkdir()
    x = np.array([[1, 2], [3, 4]], dtype=np.float32)
    np.savez(bundle / "in.npz", x=x)
    np.savez(bundle / "out.npz", y=x * 2)
    (bundle / "weights.bin").write_bytes(b"\0")
    (bundle / "manifest.json").write_text(
        json.dumps(
            {
                "name": "doubled",
                "version": "1.0.0",
                "framework": "doubler-1.0",
                "inputs": [{"name": "x", "dtype": "float32", "shape": ["n", 2]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": ["n", 2]}],
                "tests": [
                    {"name": "golden", "kind": "golden", "inputs": "in.npz", "expected": "out.npz"},
                    {"name": "signature", "kind": "signature"},
                ],
            }
        )
    )
    result = mloci("test", bundle, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["environment"]["runner"] == "doubler"
    edit_manifest(bundle, framework="tensorflow-2.15")
    missing = mloci("test", bundle)
    assert missing.exit_code == 2 and "no runner for framework 'tensorflow'" in missing.stderr
    assert "mloci.runners" in missing.stderr


# -- the environment -------------------------------------------------------------------------------


def test_quantities() -> None:
    assert quantity("500m") == 0.5
    assert quantity("2") == 2
    assert quantity("256Mi") == 256 << 20
    assert quantity("1G") == 1e9


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limits_take_the_tightest_on_the_way_to_the_root(tmp_path: Path) -> None:
    _write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
    _write(tmp_path, "proc/self/cgroup", "0::/kubepods/pod1/ctr\n")
    _write(tmp_path, "sys/fs/cgroup/kubepods/cpu.max", "max 100000\n")
    _write(tmp_path, "sys/fs/cgroup/kubepods/pod1/cpu.max", "50000 100000\n")
    _write(tmp_path, "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "150000 100000\n")
    _write(tmp_path, "sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "268435456\n")
    _write(tmp_path, "sys/fs/cgroup/kubepods/memory.max", "max\n")
    _write(tmp_path, "proc/meminfo", "MemTotal:       16000000 kB\n")
    assert cpu_limit(tmp_path) == (0.5, "cgroup v2 cpu.max")
    assert memory_limit(tmp_path) == (268435456.0, "cgroup v2 memory.max")


def test_cgroup_v1_limits_and_the_host(tmp_path: Path) -> None:
    _write(tmp_path, "proc/self/cgroup", "4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n")
    _write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "25000\n")
    _write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    _write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    _write(tmp_path, "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "134217728\n")
    _write(tmp_path, "proc/meminfo", "MemTotal:       16000000 kB\n")
    assert cpu_limit(tmp_path) == (0.25, "cgroup v1 cpu.cfs_quota_us")
    assert memory_limit(tmp_path) == (134217728.0, "cgroup v1 memory.limit_in_bytes")
    host = tmp_path / "host"
    _write(host, "proc/meminfo", "MemTotal:       16000000 kB\n")
    assert memory_limit(host) == (16000000 * 1024, "host memory")
    assert cpu_limit(host)[1] == "host CPUs"


def test_check_names_every_mismatch(tmp_path: Path) -> None:
    _write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
    _write(tmp_path, "proc/self/cgroup", "0::/\n")
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "50000 100000\n")
    _write(tmp_path, "sys/fs/cgroup/memory.max", "134217728\n")
    manifest = BundleManifest.model_validate(
        {
            "name": "m",
            "version": "1.0.0",
            "python": "3.7",
            "dependencies": {
                "python": "<3.8",
                "requirements": [
                    "click==0.0.1",
                    "surely-not-installed-here==1.0",
                    "pywin32==306; sys_platform == 'win32'",
                ],
            },
            "runtime": {"cpu": "2", "memory": "1Gi", "accelerator": "nvidia-a100-80gb"},
        }
    )
    report = check_environment(manifest, bundle="m", root=tmp_path)
    lines = [f.line() for f in report.mismatches]
    assert not report.passed
    assert lines[0].startswith("python: requires <3.8 (dependencies.python), found 3.")
    assert lines[1].startswith("python: requires 3.7 (python), found 3.")
    assert lines[2].startswith("click: requires click==0.0.1, found click ")
    assert (
        lines[3] == "surely-not-installed-here: requires surely-not-installed-here==1.0, found not installed"
    )
    assert lines[4] == "cpu: requires 2 CPU (runtime.cpu), found 0.5 (cgroup v2 cpu.max)"
    assert lines[5] == "memory: requires 1Gi (runtime.memory), found 128.0Mi (cgroup v2 memory.max)"
    assert lines[6] == "accelerator: requires nvidia-a100-80gb, found none"
    assert len(lines) == 7  # pywin32's marker does not apply here


def test_init_starts_the_tests_section_from_golden_files(tmp_path: Path, mloci: Runner) -> None:
    bundle = tmp_path / "fresh"
    (bundle / "tests").mkdir(parents=True)
    for name in ("model.onnx", "tests/golden_inputs.json", "tests/golden_outputs.json"):
        (bundle / name).write_bytes((EXAMPLE / name).read_bytes())
    assert mloci("init", bundle).exit_code == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["tests"] == [
        {
            "name": "golden",
            "kind": "golden",
            "inputs": "tests/golden_inputs.json",
            "expected": "tests/golden_outputs.json",
        },
        {"name": "signature", "kind": "signature"},
        {"name": "latency", "kind": "latency"},  # defaults are not written
    ]
    assert manifest["inputs"] == [{"name": "features", "dtype": "float32", "shape": [None, 7]}]
    assert [o["name"] for o in manifest["outputs"]] == ["label", "probabilities"]
    result = mloci("test", bundle)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "no bound declared" in result.stdout


UV_LOCK = """
version = 1
requires-python = ">=3.9"

[[package]]
name = "serving"
version = "1.0.0"
source = { virtual = "." }
dependencies = [
    { name = "numpy" },
    { name = "pywin32", marker = "sys_platform == 'win32'" },
]

[[package]]
name = "numpy"
version = "2.4.6"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "helper" }]

[[package]]
name = "helper"
version = "1.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pywin32"
version = "306"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "unrelated"
version = "9"
source = { registry = "https://pypi.org/simple" }
"""


def test_lock_files_yield_the_packages_that_apply_here(tmp_path: Path) -> None:
    from mloci.bundle.locks import read_lock

    linux = {"sys_platform": "linux", "python_version": "3.11", "platform_machine": "x86_64"}
    (tmp_path / "uv.lock").write_text(UV_LOCK)
    lock = read_lock(tmp_path, linux)
    assert lock is not None and lock.kind == "uv"
    assert [(p.name, p.version) for p in lock.packages] == [("helper", "1.0"), ("numpy", "2.4.6")]
    (tmp_path / "pylock.toml").write_text(
        'lock-version = "1.0"\n[[packages]]\nname = "numpy"\nversion = "2.4.6"\n'
        '[[packages]]\nname = "pywin32"\nversion = "306"\nmarker = "sys_platform == \'win32\'"\n'
    )
    lock = read_lock(tmp_path, linux)  # pylock.toml wins over uv.lock
    assert lock is not None and lock.path == "pylock.toml"
    assert [(p.name, p.version) for p in lock.packages] == [("numpy", "2.4.6")]


def test_the_python_api_returns_reports_instead_of_raising(bundle: Path) -> None:
    import mloci

    path = bundle / "tests" / "golden_outputs.json"
    expected = json.loads(path.read_text())
    expected["label"][2] = 1 - expected["label"][2]
    path.write_text(json.dumps(expected))
    report = mloci.run_tests(bundle, only=["golden"])
    assert isinstance(report, mloci.ContractReport) and not report.passed
    assert report.failures[0].detail.startswith("label[2]: expected")
    checked = mloci.check_environment(str(bundle))
    assert isinstance(checked, mloci.CheckReport)
    assert {f.check for f in checked.findings} >= {"python", "requirement", "cpu", "memory"}
    assert issubclass(mloci.ContractError, mloci.MlociError) and mloci.ContractError.exit_code == 12


def test_an_accelerator_is_checked_only_when_asked_and_matched_by_model(tmp_path: Path) -> None:
    _write(tmp_path, "proc/driver/nvidia/gpus/0000:00:1e.0/information", "Model: \t Tesla T4\nIRQ: 42\n")
    _write(tmp_path, "proc/meminfo", "MemTotal:       16000000 kB\n")

    def finding(runtime: dict[str, object], hardware: list[dict[str, str]] | None = None) -> list[str]:
        manifest = BundleManifest.model_validate(
            {"name": "m", "version": "1.0.0", "runtime": runtime, "hardware": hardware or []}
        )
        report = check_environment(manifest, bundle="m", root=tmp_path)
        return [f"{f.ok} {f.line()}" for f in report.findings if f.check == "accelerator"]

    assert finding({"accelerator": "nvidia-t4"}) == [
        "True accelerator: requires nvidia-t4, found nvidia Tesla T4"
    ]
    assert finding({"accelerator": "nvidia-a100-80gb"}) == [
        "False accelerator: requires nvidia-a100-80gb, found nvidia Tesla T4"
    ]
    assert finding({"accelerator": "none"}) == []
    assert finding({}, [{"kind": "gpu"}]) == ["True accelerator: requires gpu, found nvidia Tesla T4"]
    assert finding({}, [{"kind": "cpu"}, {"kind": "gpu"}]) == []  # a CPU target is enough


def test_validate_warns_about_unpinned_requirements_files(bundle: Path, mloci: Runner) -> None:
    (bundle / "requirements.txt").write_text(
        "numpy==2.4.6\nonnx>=1.16  # floating\n\n-r other.txt\nscikit-learn\n"
    )
    result = mloci("validate", bundle)
    assert result.exit_code == 0  # a warning, not a problem
    assert "requirements.txt:2: 'onnx>=1.16' is not pinned; use onnx==VERSION or a lock file" in result.stderr
    assert "requirements.txt:5: 'scikit-learn' is not pinned" in result.stderr
    report = json.loads(mloci("validate", bundle, "--json").stdout)
    assert [w["path"] for w in report["warnings"]] == ["requirements.txt:2", "requirements.txt:5"]
    assert mloci("validate", EXAMPLE).stderr == ""
