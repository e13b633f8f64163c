"""``mloci test``: run the tests a bundle's manifest declares, and report measured results.

Kinds (``tests`` in ``manifest.json``, see :mod:`mloci.bundle.manifest`):

- ``golden``: run the model on recorded inputs; every recorded output must match within
  ``atol + rtol * |expected|``; the report names the worst element of each output.
- ``signature``: the declared ``inputs``/``outputs`` match the names, dtypes and shapes the
  model itself declares.
- ``latency``: p50/p99 of single calls over ``iterations`` after ``warmup`` calls, against the
  test's bounds or else ``runtime.latency_p50_ms``/``latency_p99_ms``.
- ``command``: a program run in the bundle directory; exit status 0 passes. This runs code from
  the bundle, with the caller's permissions.

A test that cannot run (a missing input, a model that errors) fails with the reason; it never
stops the other tests.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mloci import __version__
from mloci.bundle.load import load_bundle
from mloci.bundle.manifest import (
    MANIFEST_FILENAME,
    BundleManifest,
    CommandTest,
    ContractTest,
    GoldenTest,
    LatencyTest,
    SignatureTest,
    TensorSpec,
)
from mloci.contract.arrays import compare, load_arrays
from mloci.contract.runners import Array, Runner, TensorInfo, load_runner, numpy_dtype
from mloci.errors import MlociError, UsageError
from mloci.store import Session
from mloci.types.digest import Digest
from mloci.types.reference import Reference
from mloci.types.text import escape_controls

_TAIL = 2000  # characters of a command's output kept in the report
_SECRET_ENV = frozenset({"MLOCI_PASSWORD", "MLOCI_USERNAME", "MLOCI_KEY_PASSWORD"})


def printable(text: str) -> str:
    """``text`` with control characters escaped, so bundle output cannot drive the terminal."""
    return escape_controls(text)


@dataclass(frozen=True)
class ContractResult:
    """One test's outcome: pass/fail, one line saying why, and what was measured."""

    name: str
    kind: str
    passed: bool
    detail: str
    measurements: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "detail": self.detail,
            "measurements": self.measurements,
        }


@dataclass(frozen=True)
class ContractReport:
    """Every test of one bundle, with the environment they ran in."""

    name: str
    version: str
    bundle: str  # the directory tested, or the reference pulled
    reference: Reference | None
    digest: Digest | None
    results: tuple[ContractResult, ...]
    environment: dict[str, Any]
    started_on: datetime
    finished_on: datetime
    manifest_sha256: str  # of the manifest.json that declared the tests

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[ContractResult]:
        return [r for r in self.results if not r.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "name": self.name,
            "version": self.version,
            "reference": str(self.reference) if self.reference else None,
            "digest": str(self.digest) if self.digest else None,
            "passed": self.passed,
            "manifestSha256": self.manifest_sha256,
            "tests": [r.to_json() for r in self.results],
            "environment": self.environment,
            "startedOn": self.started_on.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finishedOn": self.finished_on.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def cpu_model() -> str | None:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(runner: Runner | None) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "mloci": __version__,
        **({"runner": runner.name, "runtime": runner.versions()} if runner else {}),
    }


# -- the test kinds ------------------------------------------------------------------------------


def _dims_match(declared: Sequence[int | str | None], real: Sequence[int | str | None]) -> str | None:
    if len(declared) != len(real):
        return f"rank {len(declared)} declared, the model's is {len(real)}"
    for axis, (want, have) in enumerate(zip(declared, real, strict=True)):
        if isinstance(want, int) and isinstance(have, int) and want != have:
            return f"dimension {axis} is {want} declared, {have} in the model"
        if not isinstance(want, int) and isinstance(have, int):
            return f"dimension {axis} is dynamic ({want}) declared, fixed to {have} in the model"
    return None


def _signature(test: SignatureTest, manifest: BundleManifest, runner: Runner) -> ContractResult:
    real = {"input": runner.inputs(), "output": runner.outputs()}
    declared: dict[str, list[TensorSpec]] = {"input": manifest.inputs, "output": manifest.outputs}
    measured = {
        "model": {f"{k}s": [t.to_json() for t in v] for k, v in real.items()},
    }
    if not manifest.inputs and not manifest.outputs:
        return ContractResult(
            test.name, test.kind, False, "the manifest declares no inputs or outputs", measured
        )
    problems: list[str] = []
    for kind, specs in declared.items():
        by_name = {t.name: t for t in real[kind]}
        for spec in specs:
            info = by_name.get(spec.name)
            if info is None:
                names = ", ".join(repr(n) for n in by_name) or "none"
                problems.append(
                    f"{kind} {spec.name!r} is declared but the model has no such {kind} (it has {names})"
                )
            elif info.dtype != spec.dtype:
                problems.append(f"{kind} {spec.name!r} is {spec.dtype} declared, {info.dtype} in the model")
            elif spec.shape and (mismatch := _dims_match(spec.shape, info.shape)):
                problems.append(f"{kind} {spec.name!r}: {mismatch}")
    declared_inputs = {t.name for t in manifest.inputs}
    problems.extend(
        f"input {t.name!r} of the model is not declared in the manifest"
        for t in real["input"]
        if t.name not in declared_inputs
    )
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return ContractResult(
            test.name, test.kind, False, problems[0] + more, {**measured, "problems": problems}
        )
    checked = len(manifest.inputs) + len(manifest.outputs)
    return ContractResult(test.name, test.kind, True, f"{checked} declared tensors match the model", measured)


def _golden_inputs(root: Path, test: GoldenTest, runner: Runner) -> dict[str, Array]:
    dtypes = {t.name: t.dtype for t in runner.inputs()}
    feeds = load_arrays(root / test.inputs, dtypes)
    missing = [name for name in dtypes if name not in feeds]
    if missing:
        raise UsageError(f"{test.inputs} has no value for the model's input {missing[0]!r}")
    unknown = [name for name in feeds if name not in dtypes]
    if unknown:
        raise UsageError(f"{test.inputs} names {unknown[0]!r}, which is not an input of the model")
    return feeds


def _golden(root: Path, test: GoldenTest, runner: Runner) -> ContractResult:
    feeds = _golden_inputs(root, test, runner)
    expected = load_arrays(root / test.expected)
    actual = runner.run(feeds)
    comparisons = []
    for name, want in expected.items():
        if name not in actual:
            names = ", ".join(repr(n) for n in actual)
            raise UsageError(
                f"{test.expected} names {name!r}, which the model does not output (it has {names})"
            )
        comparisons.append(compare(name, actual[name], want, rtol=test.rtol, atol=test.atol))
    failed = [c for c in comparisons if not c.passed]
    measured = {
        "rtol": test.rtol,
        "atol": test.atol,
        "maxAbsError": max((c.max_abs_error for c in comparisons), default=0.0),
        "maxRelError": max((c.max_rel_error for c in comparisons), default=0.0),
        "outputs": [c.to_json() for c in comparisons],
    }
    measured = {
        k: (str(v) if isinstance(v, float) and not np.isfinite(v) else v) for k, v in measured.items()
    }
    if failed:
        more = f" (and {len(failed) - 1} more outputs)" if len(failed) > 1 else ""
        return ContractResult(test.name, test.kind, False, failed[0].describe() + more, measured)
    worst = max(comparisons, key=lambda c: c.max_abs_error)
    return ContractResult(
        test.name,
        test.kind,
        True,
        f"{len(comparisons)} outputs within tolerance; {worst.describe()}",
        measured,
    )


def _synthetic(info: TensorInfo, batch_size: int, rng: np.random.Generator) -> Array:
    shape = [
        d if isinstance(d, int) else (batch_size if axis == 0 else 1) for axis, d in enumerate(info.shape)
    ]
    dtype = numpy_dtype(info.dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "O":
        return np.full(shape, "", dtype=object)
    return np.zeros(shape, dtype=dtype)


def _batch(array: Array, batch_size: int) -> Array:
    if array.ndim == 0 or len(array) == 0:
        return array
    repeats = -(-batch_size // len(array))
    return np.concatenate([array] * repeats)[:batch_size] if repeats > 1 else array[:batch_size]


def _latency_feeds(
    root: Path, manifest: BundleManifest, test: LatencyTest, runner: Runner
) -> tuple[dict[str, Array], str]:
    golden = next((t for t in manifest.tests if isinstance(t, GoldenTest)), None)
    if golden is not None:
        feeds = _golden_inputs(root, golden, runner)
        return {k: _batch(v, test.batch_size) for k, v in feeds.items()}, golden.inputs
    rng = np.random.default_rng(0)
    return {t.name: _synthetic(t, test.batch_size, rng) for t in runner.inputs()}, "synthetic"


def _latency(root: Path, manifest: BundleManifest, test: LatencyTest, runner: Runner) -> ContractResult:
    feeds, source = _latency_feeds(root, manifest, test, runner)
    for _ in range(test.warmup):
        runner.run(feeds)
    samples = np.empty(test.iterations, dtype=np.float64)
    clock = time.perf_counter_ns
    for i in range(test.iterations):
        start = clock()
        runner.run(feeds)
        samples[i] = (clock() - start) / 1e6
    p50, p99 = (float(v) for v in np.percentile(samples, [50, 99]))
    total_s = float(samples.sum()) / 1e3
    runtime = manifest.runtime
    bounds = {
        "p50_ms": test.p50_ms or (runtime.latency_p50_ms if runtime else None),
        "p99_ms": test.p99_ms or (runtime.latency_p99_ms if runtime else None),
    }
    measured: dict[str, Any] = {
        "batchSize": test.batch_size,
        "iterations": test.iterations,
        "warmup": test.warmup,
        "inputs": source,
        "p50_ms": round(p50, 4),
        "p99_ms": round(p99, 4),
        "mean_ms": round(float(samples.mean()), 4),
        "max_ms": round(float(samples.max()), 4),
        "throughput_per_s": round(test.batch_size * test.iterations / total_s, 1) if total_s else None,
        "bounds": {k: v for k, v in bounds.items() if v is not None},
    }
    parts, over = [], []
    for key, value in (("p50_ms", p50), ("p99_ms", p99)):
        bound = bounds[key]
        label = key.removesuffix("_ms")
        parts.append(f"{label} {value:.3g} ms" + (f" (bound {bound:g} ms)" if bound is not None else ""))
        if bound is not None and value > bound:
            over.append(f"{label} {value:.3g} ms exceeds {bound:g} ms")
    if over:
        return ContractResult(test.name, test.kind, False, "; ".join(over), measured)
    unbounded = "" if any(bounds.values()) else "; no bound declared"
    return ContractResult(test.name, test.kind, True, ", ".join(parts) + unbounded, measured)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return printable(lines[-1][:300]) if lines else ""


def _command_env() -> dict[str, str]:
    """The caller's environment without mloci's secrets: bundle code never sees them."""
    return {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}


def _command(root: Path, test: CommandTest) -> ContractResult:
    # "python" means the interpreter running mloci, where the model's libraries are installed.
    program = sys.executable if test.run[0] in ("python", "python3") else test.run[0]
    started = time.monotonic()
    try:
        done = subprocess.run(
            [program, *test.run[1:]],
            cwd=root,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=test.timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
            env=_command_env(),
        )
    except FileNotFoundError:
        return ContractResult(test.name, test.kind, False, f"{printable(test.run[0])}: program not found")
    except PermissionError:
        return ContractResult(test.name, test.kind, False, f"{printable(test.run[0])}: not executable")
    except subprocess.TimeoutExpired:
        return ContractResult(test.name, test.kind, False, f"stopped after {test.timeout_s:g} s (timeout_s)")
    measured = {
        "exitCode": done.returncode,
        "seconds": round(time.monotonic() - started, 3),
        "stdout": printable(done.stdout[-_TAIL:].replace("\n", "\x00")).replace("\\x00", "\n"),
        "stderr": printable(done.stderr[-_TAIL:].replace("\n", "\x00")).replace("\\x00", "\n"),
    }
    if done.returncode == 0:
        return ContractResult(test.name, test.kind, True, "exit status 0", measured)
    why = _last_line(done.stderr) or _last_line(done.stdout)
    return ContractResult(
        test.name, test.kind, False, f"exit status {done.returncode}" + (f": {why}" if why else ""), measured
    )


# -- running them --------------------------------------------------------------------------------


def _run_one(
    root: Path, manifest: BundleManifest, test: ContractTest, runner: Callable[[], Runner]
) -> ContractResult:
    if isinstance(test, CommandTest):
        return _command(root, test)
    model = runner()  # a model that cannot load stops everything: no model test can run
    try:
        if isinstance(test, GoldenTest):
            return _golden(root, test, model)
        if isinstance(test, LatencyTest):
            return _latency(root, manifest, test, model)
        return _signature(test, manifest, model)
    except MlociError as exc:
        return ContractResult(test.name, test.kind, False, str(exc))


def run_tests(
    root: Path,
    *,
    trust_pickle: bool = False,
    only: Sequence[str] = (),
    reference: Reference | None = None,
    digest: Digest | None = None,
) -> ContractReport:
    """Run the tests the bundle at ``root`` declares (those named in ``only``, when given)."""
    bundle = load_bundle(root)
    manifest = bundle.manifest
    tests = [t for t in manifest.tests if not only or t.name in only]
    if not manifest.tests:
        raise UsageError(
            f"{manifest.name} {manifest.version} declares no tests",
            hint="add a 'tests' section to manifest.json (docs/contracts.md)",
        )
    unknown = sorted(set(only) - {t.name for t in manifest.tests})
    if unknown:
        names = ", ".join(t.name for t in manifest.tests)
        raise UsageError(f"no test named {unknown[0]!r}", hint=f"the bundle's tests: {names}")
    started = datetime.now(UTC)
    loaded: list[Runner] = []

    def runner() -> Runner:
        if not loaded:
            loaded.append(load_runner(root, manifest, trust_pickle=trust_pickle))
        return loaded[0]

    results = tuple(_run_one(root, manifest, test, runner) for test in tests)
    return ContractReport(
        name=manifest.name,
        version=manifest.version,
        bundle=str(reference) if reference else str(root),
        reference=reference,
        digest=digest,
        results=results,
        environment=environment(loaded[0] if loaded else None),
        started_on=started,
        finished_on=datetime.now(UTC),
        manifest_sha256=hashlib.sha256((root / MANIFEST_FILENAME).read_bytes()).hexdigest(),
    )


def run_reference_tests(
    reference: Reference,
    *,
    session: Session | None = None,
    verify_key: Path | None = None,
    trust_pickle: bool = False,
    only: Sequence[str] = (),
) -> ContractReport:
    """Pull ``reference`` (every byte verified; signed by ``verify_key`` when given) into a
    temporary directory, run its tests there, and remove the directory."""
    from mloci.ops.pull import pull  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="mloci-test-") as tmp:
        target = Path(tmp) / "bundle"
        pulled = pull(reference, target, session=session, verify_key=verify_key)
        return run_tests(
            target, trust_pickle=trust_pickle, only=only, reference=pulled.reference, digest=pulled.digest
        )
