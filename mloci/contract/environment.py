"""``mloci check``: does this environment meet what a bundle's manifest asks for?

Checked, each mismatch named on its own:

- the Python version against ``dependencies.python`` (a specifier) and ``python`` (the
  ``major.minor`` the model was built with);
- installed distributions against the pinned ``dependencies.requirements`` (markers evaluated
  for the checked interpreter);
- CPU and memory limits against ``runtime.cpu``/``runtime.memory``: the cgroup v2 limits on the
  way from this process's cgroup to the root (the tightest wins), else cgroup v1, else the host;
- an accelerator, only when ``runtime.accelerator`` or ``hardware`` asks for one.

The interpreter checked is the one running mloci, or another one (``--python``): then a small
stdlib-only probe runs inside it and reports its version and distributions.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mloci.bundle.load import load_bundle
from mloci.bundle.locks import lock_layer, read_lock
from mloci.bundle.manifest import BundleManifest
from mloci.errors import BundleInvalidError, UsageError
from mloci.store import Session, read_small_blob, scoped
from mloci.types.manifest import Manifest
from mloci.types.reference import Reference

_UNITS = {
    "": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
}  # fmt: skip
_UNLIMITED = 1 << 60  # cgroup v1 writes a page-rounded LONG_MAX for "no limit"
_NO_ACCELERATOR = ("", "none", "cpu")


def quantity(text: str) -> float:
    """A Kubernetes quantity ('500m', '2', '256Mi', '4G') as a number."""
    number = text.rstrip("kKMGTimn")
    unit = text[len(number) :]
    if unit not in _UNITS:
        raise UsageError(f"{text!r} is not a quantity such as '500m', '2', '256Mi'")
    return float(number) * _UNITS[unit]


def human_bytes(size: float) -> str:
    for unit in ("B", "Ki", "Mi", "Gi", "Ti"):
        if size < 1024 or unit == "Ti":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size}B"


# -- the interpreter -----------------------------------------------------------------------------


def probe() -> dict[str, Any]:  # pragma: no cover - also runs inside other interpreters
    """What an interpreter reports about itself. Standard library only: it runs in the checked one."""
    import os  # noqa: PLC0415
    import platform  # noqa: PLC0415
    import re  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from importlib import metadata  # noqa: PLC0415

    distributions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            distributions.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version)
    info = sys.implementation.version
    implementation_version = f"{info.major}.{info.minor}.{info.micro}"
    if info.releaselevel != "final":
        implementation_version += info.releaselevel[0] + str(info.serial)
    markers = {
        "implementation_name": sys.implementation.name,
        "implementation_version": implementation_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "distributions": distributions,
        "markers": markers,
    }


def probe_interpreter(python: str | None) -> dict[str, Any]:
    """:func:`probe` for this interpreter (None) or run inside the ``python`` executable."""
    if python is None:
        return probe()
    executable = shutil.which(python) or python
    try:
        body = textwrap.dedent(inspect.getsource(probe))
    except (OSError, TypeError):
        raise UsageError(
            "mloci's source is not available here, so --python cannot probe another interpreter"
        ) from None
    source = (
        "from __future__ import annotations\nimport json\nfrom typing import Any\n"
        + body
        + "\nprint(json.dumps(probe()))\n"
    )
    try:
        done = subprocess.run(
            [executable, "-c", source], capture_output=True, text=True, timeout=60, check=False, cwd="/"
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"cannot run {python}: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"{python} is not a working Python interpreter: {last[:200]}")
    try:
        value: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise UsageError(f"{python} printed something other than the probe's JSON") from None
    return value


# -- cgroups -------------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _walk_up(base: Path, relative: str) -> list[Path]:
    """``base/relative`` and each parent up to ``base``, those that exist (limits nest: all apply)."""
    parts = [p for p in relative.split("/") if p and p not in (".", "..")]
    return [
        base.joinpath(*parts[:depth])
        for depth in range(len(parts), -1, -1)
        if base.joinpath(*parts[:depth]).is_dir()
    ]


def _own_cgroups(root: Path) -> dict[str, str]:
    """Controller (``""`` for cgroup v2) → this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in (_read(root / "proc/self/cgroup") or "").splitlines():
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _v2_dirs(root: Path) -> list[Path]:
    """The cgroup v2 directories from this process's cgroup up to the mount's root."""
    base = root / "sys/fs/cgroup"
    if not (base / "cgroup.controllers").is_file():
        return []
    return _walk_up(base, _own_cgroups(root).get("", ""))


def _v1_dirs(root: Path, controller: str) -> list[Path]:
    """The cgroup v1 directories of ``controller`` from this process's cgroup up to the mount's root."""
    relative = _own_cgroups(root).get(controller, "")
    for mount in (controller, "cpu,cpuacct" if controller == "cpu" else controller):
        base = root / "sys/fs/cgroup" / mount
        if base.is_dir():
            return _walk_up(base, relative)
    return []


def cpu_limit(root: Path = Path("/")) -> tuple[float, str]:
    """CPUs this process may use, and where that number comes from."""
    limits: list[tuple[float, str]] = []
    for directory in _v2_dirs(root):
        text = _read(directory / "cpu.max")
        if text and not text.startswith("max"):
            quota, _, period = text.partition(" ")
            limits.append((int(quota) / int(period or 100000), "cgroup v2 cpu.max"))
    if not limits:
        for directory in _v1_dirs(root, "cpu"):
            quota_text = _read(directory / "cpu.cfs_quota_us")
            period_text = _read(directory / "cpu.cfs_period_us")
            if quota_text and period_text and int(quota_text) > 0:
                limits.append((int(quota_text) / int(period_text), "cgroup v1 cpu.cfs_quota_us"))
    host = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limits.append((float(host), "host CPUs"))
    return min(limits, key=lambda item: item[0])


def memory_limit(root: Path = Path("/")) -> tuple[float | None, str]:
    """Bytes of memory this process may use, and where that number comes from."""
    limits: list[tuple[float, str]] = []
    for directory in _v2_dirs(root):
        text = _read(directory / "memory.max")
        if text and text != "max":
            limits.append((float(text), "cgroup v2 memory.max"))
    if not limits:
        for directory in _v1_dirs(root, "memory"):
            text = _read(directory / "memory.limit_in_bytes")
            if text and text.isdigit() and int(text) < _UNLIMITED:
                limits.append((float(text), "cgroup v1 memory.limit_in_bytes"))
    for line in (_read(root / "proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            limits.append((float(line.split()[1]) * 1024, "host memory"))
    if not limits:
        return None, "unknown"
    return min(limits, key=lambda item: item[0])


def accelerators(root: Path = Path("/")) -> list[str]:
    """Accelerators visible here: NVIDIA GPUs by name (or 'nvidia'), AMD ('amd'), TPUs ('tpu')."""
    found: list[str] = []
    gpus = root / "proc/driver/nvidia/gpus"
    if gpus.is_dir():
        for info in sorted(gpus.glob("*/information")):
            for line in (_read(info) or "").splitlines():
                if line.startswith("Model:"):
                    found.append(f"nvidia {line.split(':', 1)[1].strip()}")
    if not found and (root / "dev/nvidia0").exists():
        found.append("nvidia")
    if (root / "dev/kfd").exists():
        found.append("amd")
    if any((root / "dev").glob("accel*")) or any((root / "dev").glob("vfio/[0-9]*")):
        found.append("tpu")
    return found


# -- the checks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One comparison: what the bundle requires, what is here, whether that is enough."""

    check: str  # python, requirement, lock, cpu, memory, accelerator
    subject: str
    ok: bool
    required: str
    found: str

    def line(self) -> str:
        return f"{self.subject}: requires {self.required}, found {self.found}"

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subject": self.subject,
            "ok": self.ok,
            "required": self.required,
            "found": self.found,
        }


@dataclass(frozen=True)
class CheckReport:
    name: str
    version: str
    bundle: str
    interpreter: str
    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def mismatches(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "name": self.name,
            "version": self.version,
            "interpreter": self.interpreter,
            "compatible": self.passed,
            "findings": [f.to_json() for f in self.findings],
            "mismatches": [f.line() for f in self.mismatches],
        }


def _python_findings(manifest: BundleManifest, env: dict[str, Any]) -> list[Finding]:
    found = str(env["python"])
    findings = []
    spec_text = manifest.dependencies.python if manifest.dependencies else None
    if spec_text:
        spec = SpecifierSet(spec_text if spec_text[0] in "<>=!~" else f"=={spec_text}")
        ok = spec.contains(found, prereleases=True)
        findings.append(Finding("python", "python", ok, f"{spec_text} (dependencies.python)", found))
    if manifest.python:
        ok = found == manifest.python or found.startswith(f"{manifest.python}.")
        findings.append(Finding("python", "python", ok, f"{manifest.python} (python)", found))
    return findings


def _requirement_findings(manifest: BundleManifest, env: dict[str, Any]) -> list[Finding]:
    installed: dict[str, str] = env["distributions"]
    markers: dict[str, str] = env["markers"]
    findings = []
    for text in manifest.dependencies.requirements if manifest.dependencies else []:
        req = Requirement(text)
        if req.marker is not None:
            try:
                needed = req.marker.evaluate({**markers, "extra": ""})
            except UndefinedEnvironmentName:
                needed = True
            if not needed:
                continue
        have = installed.get(canonicalize_name(req.name))
        if have is None:
            findings.append(Finding("requirement", req.name, False, text, "not installed"))
            continue
        try:
            ok = req.specifier.contains(Version(have), prereleases=True)
        except InvalidVersion:
            ok = False
        findings.append(Finding("requirement", req.name, ok, text, f"{req.name} {have}"))
    return findings


def _resource_findings(manifest: BundleManifest, root: Path) -> list[Finding]:
    runtime = manifest.runtime
    findings = []
    if runtime and runtime.cpu:
        cpus, source = cpu_limit(root)
        ok = cpus + 1e-9 >= quantity(runtime.cpu)
        findings.append(Finding("cpu", "cpu", ok, f"{runtime.cpu} CPU (runtime.cpu)", f"{cpus:g} ({source})"))
    if runtime and runtime.memory:
        limit, source = memory_limit(root)
        if limit is None:
            findings.append(
                Finding("memory", "memory", True, f"{runtime.memory} (runtime.memory)", "unknown")
            )
        else:
            ok = limit >= quantity(runtime.memory)
            findings.append(
                Finding(
                    "memory",
                    "memory",
                    ok,
                    f"{runtime.memory} (runtime.memory)",
                    f"{human_bytes(limit)} ({source})",
                )
            )
    wanted = (runtime.accelerator or "").lower() if runtime else ""
    if wanted in _NO_ACCELERATOR:
        wanted = ""
    hardware = manifest.hardware
    if not wanted and hardware and not any(h.kind == "cpu" for h in hardware):
        target = hardware[0]
        wanted = f"{target.kind}{f'-{target.model}' if target.model else ''}".lower()
    if wanted:
        present = accelerators(root)
        vendor, _, model = wanted.partition("-")
        vendor = {"gpu": "", "npu": "", "fpga": ""}.get(vendor, vendor)
        matches = [
            a
            for a in present
            if (not vendor or a.startswith(vendor))
            and (not model or a == vendor or model.split("-")[0] in a.lower())
        ]
        findings.append(
            Finding("accelerator", "accelerator", bool(matches), wanted, ", ".join(present) or "none")
        )
    return findings


def _lock_findings(directory: Path, env: dict[str, Any], already: set[str]) -> list[Finding]:
    lock = read_lock(directory, env["markers"])
    if lock is None:
        return []
    installed: dict[str, str] = env["distributions"]
    findings = []
    for package in lock.packages:
        name = canonicalize_name(package.name)
        if name in already:
            continue  # named once, by the pinned requirement
        have = installed.get(name)
        required = f"{package.name}=={package.version} ({lock.path})"
        try:
            ok = have is not None and Version(have) == Version(package.version)
        except InvalidVersion:
            ok = have == package.version
        findings.append(
            Finding("lock", package.name, ok, required, f"{package.name} {have}" if have else "not installed")
        )
    return findings


def check_environment(
    manifest: BundleManifest,
    *,
    bundle: str,
    python: str | None = None,
    root: Path = Path("/"),
    directory: Path | None = None,
) -> CheckReport:
    """Compare the interpreter ``python`` (default: this one) and this machine with ``manifest``;
    with the bundle's ``directory``, also with the lock file in it."""
    env = probe_interpreter(python)
    requirements = _requirement_findings(manifest, env)
    findings = [
        *_python_findings(manifest, env),
        *requirements,
        *(
            _lock_findings(directory, env, {canonicalize_name(f.subject) for f in requirements})
            if directory is not None
            else []
        ),
        *_resource_findings(manifest, root),
    ]
    return CheckReport(manifest.name, manifest.version, bundle, str(env["executable"]), tuple(findings))


def fetch_lock(
    reference: Reference, manifest: Manifest | None, target: Path, session: Session | None
) -> bool:
    """Download the lock-file layer ``push`` marked (``dev.mloci.role: lock-file``) into ``target``.

    Only that small blob is fetched, verified against its digest; False when there is none.
    """
    found = lock_layer(manifest)
    if found is None:
        return False
    name, _, layer = found
    with scoped(session) as active:
        (target / name).write_bytes(read_small_blob(active.store(reference), reference.repository, layer))
    return True


def check_target(
    target: Path | Reference, *, python: str | None = None, session: Session | None = None
) -> CheckReport:
    """:func:`check_environment` for a bundle directory (with its lock file) or a reference (its
    manifest and lock-file layer only, never the weights)."""
    if isinstance(target, Path):
        manifest = load_bundle(target).manifest
        return check_environment(manifest, bundle=str(target), python=python, directory=target)
    from mloci.ops.inspection import inspect  # noqa: PLC0415

    with scoped(session) as active:
        info = inspect(target, session=active)
        if info.bundle is None:
            why = f": {info.bundle_problem}" if info.bundle_problem else ""
            raise BundleInvalidError(
                f"{info.reference} carries no valid bundle manifest to check against{why}"
            )
        with tempfile.TemporaryDirectory(prefix="mloci-check-") as tmp:
            has_lock = fetch_lock(info.reference, info.manifest, Path(tmp), active)
            return check_environment(
                info.bundle,
                bundle=str(info.reference),
                python=python,
                directory=Path(tmp) if has_lock else None,
            )
