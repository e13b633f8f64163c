"""Transfer benchmark: mloci against curl, skopeo and the oras SDK on a private local registry.

Run from the repository root (the venv must hold mloci and, for the oras rows, the ``oras`` SDK)::

    .venv/bin/python bench/transfer.py --size 2G
    .venv/bin/python bench/transfer.py --size 256M --repeat 3 --markdown /tmp/transfer.md

What it does: writes a bundle with one incompressible ``model.bin`` of ``--size`` bytes, starts its
own ``docker-registry`` (CNCF distribution) on 127.0.0.1 and a free port, warms the page cache, then
times every operation in a child process: wall time, and that child's peak RSS from ``os.wait4``
(taken through GNU ``/usr/bin/time`` when installed, so the copy of this Python process the child
starts as is not counted -- see ``run_child``).
Floors are ``sha256sum``, ``cat``, and a monolithic ``curl`` upload and download of the same blob.
Every push goes to a fresh repository, every pull into a fresh directory, every mloci run gets a
fresh ``$MLOCI_HOME`` (the re-push reuses its push's), so nothing is skipped by accident. With
``--repeat N`` the best wall time and the highest peak RSS are kept. A failing tool is reported in
its row; the script goes on. Only 127.0.0.1 is ever contacted.

Needs on PATH: docker-registry (or registry), curl, skopeo, sha256sum, cat.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

MIB = 1024 * 1024
CHUNK = 8 * MIB
CHILD_TIMEOUT_S = 3600.0
REGISTRY_START_TIMEOUT_S = 15.0
REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MODEL_NAME = "bench-model"
MODEL_VERSION = "1.0.0"
LAYOUT_REF = f"{MODEL_NAME}:{MODEL_VERSION}"
GNU_TIME = Path("/usr/bin/time")
ORAS_CHUNK = 16 * MIB  # oras.defaults.default_chunksize

ORAS_SCRIPT = """
import sys
import oras.client

op, host, target, path, chunk = sys.argv[1:6]
client = oras.client.OrasClient(hostname=host, insecure=True)
if op == "pull":
    client.pull(target=target, outdir=path)
else:
    client.push(
        target=target,
        files=[path],
        disable_path_validation=True,
        do_chunked=op == "push-chunked",
        chunk_size=int(chunk),
        quiet=True,
    )
"""

# Row names, shared by the table and the ratios.
SHA256SUM = "sha256sum (floor)"
HASHLIB = "python hashlib sha256 (floor)"
CAT = "cat > /dev/null (floor)"
CURL_PUT = "curl PUT monolithic (floor)"
CURL_GET = "curl GET (floor)"
CURL_GET_FILE = "curl GET to a file (floor)"
MLOCI_PUSH = "mloci push"
MLOCI_REPUSH = "mloci re-push unchanged"
MLOCI_PULL = "mloci pull"
MLOCI_LOCAL = "mloci push local store"
SKOPEO_PUSH = "skopeo push"
SKOPEO_PULL = "skopeo pull"
ORAS_PUSH = "oras push"
ORAS_PUSH_CHUNKED = f"oras push chunked ({ORAS_CHUNK // MIB} MiB)"
ORAS_PULL = "oras pull"

RATIOS: tuple[tuple[str, str, str], ...] = (
    ("mloci push / skopeo push", MLOCI_PUSH, SKOPEO_PUSH),
    ("mloci pull / curl GET", MLOCI_PULL, CURL_GET),
    # A pull writes to disk; curl writing the same bytes to a file is the physical floor for that.
    ("mloci pull / curl GET to a file", MLOCI_PULL, CURL_GET_FILE),
    ("mloci pull / skopeo pull", MLOCI_PULL, SKOPEO_PULL),
    ("mloci local push / sha256sum", MLOCI_LOCAL, SHA256SUM),
    # coreutils' sha256sum lacks SHA-NI; OpenSSL (Python's hashlib) is the real hashing floor.
    ("mloci local push / hashlib", MLOCI_LOCAL, HASHLIB),
    ("mloci pull / hashlib", MLOCI_PULL, HASHLIB),
)

HASHLIB_SCRIPT = (
    "import hashlib, sys\n"
    "h = hashlib.sha256(); buf = bytearray(1 << 20); view = memoryview(buf)\n"
    "with open(sys.argv[1], 'rb', buffering=0) as f:\n"
    "    while n := f.readinto(buf):\n"
    "        h.update(view[:n])\n"
    "print(h.hexdigest())\n"
)


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Step:
    """One child process to time, and what to tidy after it (outside the timing)."""

    argv: list[str]
    env: dict[str, str]
    discard_stdout: bool = False
    cleanup: Callable[[], None] | None = None


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_kib: int
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Row:
    name: str
    nbytes: int  # bytes moved, for MiB/s; 0 means no throughput column
    seconds: float | None = None
    peak_rss_kib: int = 0
    error: str | None = None


@dataclass
class Context:
    """Everything the measurements share."""

    workdir: Path
    bundle: Path
    model: Path
    size: int
    digest: str
    host: str
    repeat: int
    env: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    counter: int = 0

    def fresh(self, prefix: str) -> Path:
        """A new, not yet existing path in the workdir."""
        self.counter += 1
        return self.workdir / f"{prefix}-{self.counter}"

    def fresh_repo(self, namespace: str) -> str:
        self.counter += 1
        return f"{namespace}/model-{self.counter}"


Prepare = Callable[[], Step]
Verify = Callable[[Run], str | None]


# --------------------------------------------------------------------------- arguments


def parse_size(text: str) -> int:
    """``2G``, ``256M``, ``1.5GiB``, ``4096`` -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 2G or 256M)")
    power = " kmgt".index(match.group(2).lower() or " ")
    size = int(float(match.group(1)) * 1024**power)
    if size <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return size


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", type=parse_size, default=parse_size("2G"), help="model.bin size (default 2G)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="directory to work in; a temporary subdirectory is made there and removed at the end "
        f"(default: {default_work_parent()})",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per operation; the best wall time is kept"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the results as Markdown here")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def default_work_parent() -> Path:
    """The directory holding the checkout (same disk as the repository), else the system temp dir."""
    parent = REPO_ROOT.parent
    return parent if os.access(parent, os.W_OK) else Path(tempfile.gettempdir())


# --------------------------------------------------------------------------- child processes


def run_child(step: Step) -> Run:
    """Run ``step`` to completion: wall time and that command's own peak RSS.

    ``os.wait4`` on a direct child also counts the image it had before ``exec`` -- a copy of this
    Python process (tens of MiB) -- so when GNU time is present the command runs under it and its
    ``%M`` (``wait4``'s ``ru_maxrss`` seen from a ~1 MiB launcher) is taken instead.
    """
    with tempfile.TemporaryDirectory(prefix="mloci-bench-run-") as tmp:
        rss_file = Path(tmp) / "rss"
        wrapper = [str(GNU_TIME), "-f", "%M", "-o", str(rss_file)] if GNU_TIME.exists() else []
        with (Path(tmp) / "out").open("w+b") as out, (Path(tmp) / "err").open("w+b") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [*wrapper, *step.argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if step.discard_stdout else out,
                stderr=err,
                env=step.env,
                start_new_session=True,
            )
            status, wait4_rss, timed_out = wait_with_timeout(proc)
            seconds = time.perf_counter() - start
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if timed_out:
            stderr = f"timed out after {CHILD_TIMEOUT_S:.0f} s\n{stderr}"
        return Run(
            seconds=seconds,
            peak_rss_kib=read_time_rss(rss_file) or wait4_rss,
            returncode=status,
            stdout=stdout,
            stderr=stderr,
        )


def wait_with_timeout(proc: subprocess.Popen[bytes]) -> tuple[int, int, bool]:
    """Reap ``proc`` with ``os.wait4``: (exit code, ru_maxrss KiB, killed by the watchdog)."""
    lock = threading.Lock()
    state = {"done": False, "killed": False}

    def kill() -> None:
        with lock:
            if not state["done"]:
                state["killed"] = True
                os.killpg(proc.pid, signal.SIGKILL)

    watchdog = threading.Timer(CHILD_TIMEOUT_S, kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        with lock:
            state["done"] = True
        watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss, state["killed"]


def read_time_rss(path: Path) -> int | None:
    """GNU time's ``%M`` (KiB): the last line of its output file ("Command exited..." may precede it)."""
    try:
        lines = path.read_text().split()
    except OSError:
        return None
    return int(lines[-1]) if lines and lines[-1].isdigit() else None


def failure_line(run: Run) -> str:
    """The line that says why a child failed: stderr's first, or a traceback's last."""
    lines = [line.strip() for line in run.stderr.splitlines() if line.strip()]
    if not lines:
        lines = [line.strip() for line in run.stdout.splitlines() if line.strip()]
    if not lines:
        return f"exit status {run.returncode}"
    if lines[0].startswith("Traceback"):
        return lines[-1]
    return lines[0]


def measure(
    ctx: Context, name: str, prepare: Prepare, *, nbytes: int, verify: Verify | None = None
) -> Run | None:
    """Time ``prepare()``'s child ``ctx.repeat`` times; add a row; return the fastest run (None on failure)."""
    row = Row(name=name, nbytes=nbytes)
    ctx.rows.append(row)
    best = repeat_runs(ctx.repeat, row, prepare, verify)
    print(f"  {format_row(row)}", flush=True)
    return best


def repeat_runs(repeat: int, row: Row, prepare: Prepare, verify: Verify | None) -> Run | None:
    """Fill ``row`` from ``repeat`` runs (stop at the first failure); return the fastest run."""
    best: Run | None = None
    for _ in range(repeat):
        try:
            step = prepare()
        except Exception as exc:
            row.error = f"failed: setup: {exc}"
            return None
        try:
            run = run_child(step)
            problem = f"failed: {failure_line(run)}" if run.returncode != 0 else None
            if problem is None and verify is not None:
                problem = verify(run)
        except Exception as exc:
            problem = f"failed: {exc}"
        finally:
            if step.cleanup is not None:
                step.cleanup()
        if problem is not None:
            row.error = problem
            return None
        row.peak_rss_kib = max(row.peak_rss_kib, run.peak_rss_kib)
        if best is None or run.seconds < best.seconds:
            best = run
    row.seconds = best.seconds if best else None
    return best


def skip(ctx: Context, name: str, reason: str) -> None:
    row = Row(name=name, nbytes=0, error=f"skipped: {reason}")
    ctx.rows.append(row)
    print(f"  {format_row(row)}", flush=True)


def remover(*paths: Path) -> Callable[[], None]:
    def remove() -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)

    return remove


# --------------------------------------------------------------------------- the bundle


def random_chunks(total: int, workers: int) -> Iterator[bytes]:
    """``total`` incompressible bytes in CHUNK pieces, made in threads (os.urandom drops the GIL)."""
    sizes = [min(CHUNK, total - offset) for offset in range(0, total, CHUNK)]
    pending: deque[Future[bytes]] = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for size in sizes:
            pending.append(pool.submit(os.urandom, size))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def write_bundle(bundle: Path, size: int) -> Path:
    bundle.mkdir(parents=True)
    manifest = {"name": MODEL_NAME, "version": MODEL_VERSION, "description": "mloci transfer benchmark"}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    model = bundle / "model.bin"
    with model.open("wb") as out:
        for chunk in random_chunks(size, workers=os.cpu_count() or 1):
            out.write(chunk)
    return model


def warm_and_digest(path: Path) -> str:
    """Read the file once (page cache warm) and return its ``sha256:`` digest."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


# --------------------------------------------------------------------------- the registry


class LocalRegistry:
    """docker-registry on 127.0.0.1 and a free port, storage in the workdir, no access log."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            raise RuntimeError("docker-registry (or registry) not found on PATH")
        self.binary = binary
        self.config = workdir / "registry.yml"
        self.log = workdir / "registry.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: true\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {workdir / 'registry-storage'}\n"
            "  cache:\n    blobdescriptor: inmemory\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            "http:\n  addr: 127.0.0.1:0\n  secret: mloci-bench\n"
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "REGISTRY_HTTP_ADDR": "127.0.0.1:0"}
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "serve", str(self.config)], stdout=log, stderr=log, env=env
            )
        pattern = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")
        deadline = time.monotonic() + REGISTRY_START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = pattern.search(self.log.read_bytes())
            if found:
                self.port = int(found.group(1))
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"registry did not start:\n{self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


def start_upload(host: str, repo: str) -> str:
    """POST an upload session on 127.0.0.1 and return its absolute Location URL."""
    hostname, _, port = host.partition(":")
    conn = http.client.HTTPConnection(hostname, int(port), timeout=30)
    try:
        conn.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
        response = conn.getresponse()
        response.read()
        location = response.getheader("Location")
        if response.status != 202 or not location:
            raise RuntimeError(f"POST upload session: HTTP {response.status}")
    finally:
        conn.close()
    url = urljoin(f"http://{host}/", location)
    if urlsplit(url).hostname != hostname:
        raise RuntimeError(f"registry sent an upload location off 127.0.0.1: {url}")
    return url


# --------------------------------------------------------------------------- measurements


def curl_base() -> list[str]:
    return ["curl", "--silent", "--show-error", "--fail", "--noproxy", "*"]


def measure_floors(ctx: Context) -> None:
    measure(ctx, SHA256SUM, lambda: Step(["sha256sum", str(ctx.model)], ctx.env), nbytes=ctx.size)
    measure(
        ctx,
        HASHLIB,
        lambda: Step([sys.executable, "-c", HASHLIB_SCRIPT, str(ctx.model)], ctx.env),
        nbytes=ctx.size,
    )
    measure(ctx, CAT, lambda: Step(["cat", str(ctx.model)], ctx.env, discard_stdout=True), nbytes=ctx.size)
    curl_repo = ""

    def curl_put() -> Step:
        nonlocal curl_repo
        curl_repo = ctx.fresh_repo("curl")
        location = start_upload(ctx.host, curl_repo)
        url = f"{location}{'&' if '?' in location else '?'}digest={ctx.digest}"
        argv = [
            *curl_base(),
            *("-H", "Expect:", "-H", "Content-Type: application/octet-stream"),
            *("-T", str(ctx.model), "-X", "PUT", "-o", "/dev/null", url),
        ]
        return Step(argv, ctx.env)

    if measure(ctx, CURL_PUT, curl_put, nbytes=ctx.size) is None:
        skip(ctx, CURL_GET, "curl PUT failed")
        return
    blob_url = f"http://{ctx.host}/v2/{curl_repo}/blobs/{ctx.digest}"
    measure(
        ctx,
        CURL_GET,
        lambda: Step([*curl_base(), "-L", "-o", "/dev/null", blob_url], ctx.env),
        nbytes=ctx.size,
    )
    download = ctx.workdir / "curl-download.bin"
    measure(
        ctx,
        CURL_GET_FILE,
        lambda: Step([*curl_base(), "-L", "-o", str(download), blob_url], ctx.env),
        nbytes=ctx.size,
    )
    download.unlink(missing_ok=True)


def mloci_bin() -> str:
    local = VENV_BIN / "mloci"
    return str(local) if local.exists() else (shutil.which("mloci") or "mloci")


def mloci_json(run: Run) -> dict[str, object]:
    data = json.loads(run.stdout)
    if not isinstance(data, dict) or not str(data.get("digest", "")).startswith("sha256:"):
        raise ValueError(f"no digest in --json output: {run.stdout[:200]!r}")
    return data


def check_mloci_json(run: Run) -> str | None:
    try:
        mloci_json(run)
    except ValueError as exc:
        return f"failed: {exc}"
    return None


def check_pulled_file(path: Path, size: int) -> str | None:
    if not path.is_file():
        return f"failed: {path.name} not written"
    if path.stat().st_size != size:
        return f"failed: {path.name} has {path.stat().st_size} bytes, expected {size}"
    return None


def measure_mloci(ctx: Context) -> None:
    mloci = mloci_bin()
    pushed: dict[str, str] = {}  # last push: target repo, its MLOCI_HOME, and the digest

    def push() -> Step:
        pushed["repo"] = f"{ctx.host}/{ctx.fresh_repo('mloci')}"
        pushed["home"] = str(ctx.fresh("mloci-home"))
        env = {**ctx.env, "MLOCI_HOME": pushed["home"]}
        return Step([mloci, "push", str(ctx.bundle), pushed["repo"], "--json", "-q"], env)

    run = measure(ctx, MLOCI_PUSH, push, nbytes=ctx.size, verify=check_mloci_json)
    if run is None:
        for name in (MLOCI_REPUSH, MLOCI_PULL):
            skip(ctx, name, "mloci push failed")
    else:
        digest = str(mloci_json(run)["digest"])
        measure_mloci_repush(ctx, mloci, pushed["repo"], pushed["home"], digest)
        measure_mloci_pull(ctx, mloci, f"{pushed['repo']}@{digest}")

    def local_push() -> Step:
        home = ctx.fresh("mloci-local-home")
        env = {**ctx.env, "MLOCI_HOME": str(home)}
        return Step([mloci, "push", str(ctx.bundle), "--json", "-q"], env, cleanup=remover(home))

    measure(ctx, MLOCI_LOCAL, local_push, nbytes=ctx.size, verify=check_mloci_json)


def measure_mloci_repush(ctx: Context, mloci: str, repo: str, home: str, digest: str) -> None:
    def verify(run: Run) -> str | None:
        try:
            data = mloci_json(run)
        except ValueError as exc:
            return f"failed: {exc}"
        if data["digest"] != digest:
            return f"failed: digest changed to {data['digest']}"
        if data.get("unchanged") is not True or data.get("bytesUploaded", 0) != 0:
            return (
                f"not a no-op: unchanged={data.get('unchanged')}, bytesUploaded={data.get('bytesUploaded')}"
            )
        return None

    env = {**ctx.env, "MLOCI_HOME": home}
    step = Step([mloci, "push", str(ctx.bundle), repo, "--json", "-q"], env)
    measure(ctx, MLOCI_REPUSH, lambda: step, nbytes=0, verify=verify)


def measure_mloci_pull(ctx: Context, mloci: str, reference: str) -> None:
    out = ctx.workdir / "pull-mloci"

    def pull() -> Step:
        home = ctx.fresh("mloci-pull-home")
        env = {**ctx.env, "MLOCI_HOME": str(home)}
        argv = [mloci, "pull", reference, "-o", str(out), "--json", "-q"]
        return Step(argv, env, cleanup=remover(out, home))

    def verify(run: Run) -> str | None:
        return check_mloci_json(run) or check_pulled_file(out / ctx.model.name, ctx.size)

    measure(ctx, MLOCI_PULL, pull, nbytes=ctx.size, verify=verify)


def build_layout(ctx: Context) -> Path:
    """An OCI layout holding the bundle (via mloci's local store), tagged LAYOUT_REF; untimed."""
    home = ctx.workdir / "skopeo-source-home"
    env = {**ctx.env, "MLOCI_HOME": str(home)}
    run = run_child(Step([mloci_bin(), "push", str(ctx.bundle), "--json", "-q"], env))
    if run.returncode != 0:
        raise RuntimeError(f"mloci local push for the layout: {failure_line(run)}")
    return home / "oci"


def skopeo_policy(ctx: Context) -> Path:
    policy = ctx.workdir / "skopeo-policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return policy


SKOPEO_BLOB_CACHES = (
    Path("/var/lib/containers/cache"),
    Path.home() / ".local" / "share" / "containers" / "cache",
)


def clear_skopeo_blob_cache() -> None:
    for directory in SKOPEO_BLOB_CACHES:
        for cache in directory.glob("blob-info-cache-v1.*"):
            cache.unlink(missing_ok=True)


def measure_skopeo(ctx: Context) -> None:
    if shutil.which("skopeo") is None:
        skip(ctx, SKOPEO_PUSH, "skopeo not on PATH")
        skip(ctx, SKOPEO_PULL, "skopeo not on PATH")
        return
    try:
        layout = build_layout(ctx)
    except Exception as exc:
        skip(ctx, SKOPEO_PUSH, str(exc))
        skip(ctx, SKOPEO_PULL, "no skopeo push")
        return
    skopeo = ["skopeo", "--policy", str(skopeo_policy(ctx)), "copy"]
    pushed = ""

    def push() -> Step:
        nonlocal pushed
        # skopeo remembers where it saw each blob and would mount it from the previous run's
        # repository instead of uploading: forget that, so every run measures an upload.
        clear_skopeo_blob_cache()
        pushed = f"docker://{ctx.host}/{ctx.fresh_repo('skopeo')}:{MODEL_VERSION}"
        argv = [*skopeo, "--dest-tls-verify=false", f"oci:{layout}:{LAYOUT_REF}", pushed]
        return Step(argv, ctx.env)

    if measure(ctx, SKOPEO_PUSH, push, nbytes=ctx.size) is None:
        skip(ctx, SKOPEO_PULL, "skopeo push failed")
        return
    out = ctx.workdir / "pull-skopeo"
    argv = [*skopeo, "--src-tls-verify=false", pushed, f"oci:{out}:{MODEL_VERSION}"]
    measure(ctx, SKOPEO_PULL, lambda: Step(argv, ctx.env, cleanup=remover(out)), nbytes=ctx.size)


def oras_available() -> bool:
    try:
        importlib.metadata.version("oras")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def oras_step(ctx: Context, op: str, target: str, path: Path) -> Step:
    argv = [sys.executable, "-c", ORAS_SCRIPT, op, ctx.host, target, str(path), str(ORAS_CHUNK)]
    return Step(argv, ctx.env)


def measure_oras(ctx: Context) -> None:
    if not oras_available():
        for name in (ORAS_PUSH, ORAS_PUSH_CHUNKED, ORAS_PULL):
            skip(ctx, name, "oras SDK not installed in this Python")
        return
    targets: list[str] = []

    def push(op: str) -> Prepare:
        def prepare() -> Step:
            targets.append(f"{ctx.host}/{ctx.fresh_repo('oras')}:{MODEL_VERSION}")
            return oras_step(ctx, op, targets[-1], ctx.model)

        return prepare

    plain = measure(ctx, ORAS_PUSH, push("push"), nbytes=ctx.size)
    pull_from = targets[-1] if plain else ""
    chunked = measure(ctx, ORAS_PUSH_CHUNKED, push("push-chunked"), nbytes=ctx.size)
    if not pull_from and chunked:
        pull_from = targets[-1]
    if not pull_from:
        skip(ctx, ORAS_PULL, "no oras push succeeded")
        return
    out = ctx.workdir / "pull-oras"

    def pull() -> Step:
        step = oras_step(ctx, "pull", pull_from, out)
        return Step(step.argv, step.env, cleanup=remover(out))

    measure(
        ctx,
        ORAS_PULL,
        pull,
        nbytes=ctx.size,
        verify=lambda _: check_pulled_file(out / ctx.model.name, ctx.size),
    )


# --------------------------------------------------------------------------- report


def throughput(row: Row) -> float | None:
    if row.seconds is None or row.nbytes == 0 or row.seconds <= 0:
        return None
    return row.nbytes / MIB / row.seconds


def cells(row: Row) -> list[str]:
    if row.error is not None:
        return [row.name, "-", "-", "-", row.error]
    seconds = f"{row.seconds:.3f}" if row.seconds is not None else "-"
    speed = throughput(row)
    rss = f"{row.peak_rss_kib / 1024:.1f}"
    return [row.name, seconds, f"{speed:.1f}" if speed is not None else "-", rss, "ok"]


HEADER = ["operation", "wall s", "MiB/s", "peak RSS MiB", "status"]


def format_row(row: Row) -> str:
    name, seconds, speed, rss, status = cells(row)
    return f"{name:<32} {seconds:>9} {speed:>9} {rss:>13}  {status}"


def ratio_lines(rows: list[Row]) -> list[tuple[str, str]]:
    by_name = {row.name: row for row in rows}
    lines: list[tuple[str, str]] = []
    for label, top, bottom in RATIOS:
        a, b = by_name.get(top), by_name.get(bottom)
        if a and b and a.seconds and b.seconds:
            lines.append((label, f"{a.seconds / b.seconds:.2f}x"))
        else:
            lines.append((label, "n/a"))
    repush = by_name.get(MLOCI_REPUSH)
    seconds = f"{repush.seconds:.3f} s" if repush and repush.seconds is not None else "n/a"
    lines.append(("mloci re-push (unchanged)", seconds))
    return lines


def text_report(rows: list[Row]) -> str:
    header = f"{HEADER[0]:<32} {HEADER[1]:>9} {HEADER[2]:>9} {HEADER[3]:>13}  {HEADER[4]}"
    out = [header, "-" * len(header), *(format_row(row) for row in rows), ""]
    out.append("ratios (wall time; > 1 means mloci is slower):")
    out.extend(f"  {label:<30} {value}" for label, value in ratio_lines(rows))
    return "\n".join(out)


def first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts(size: int, repeat: int) -> list[tuple[str, str]]:
    registry = shutil.which("docker-registry") or shutil.which("registry") or "docker-registry"
    oras_version = importlib.metadata.version("oras") if oras_available() else "not installed"
    return [
        ("date", datetime.now(UTC).isoformat(timespec="seconds")),
        ("model.bin", f"{size / MIB:.0f} MiB, --repeat {repeat} (best wall time, highest peak RSS)"),
        ("CPUs", f"{os.cpu_count()} x {cpu_model()}"),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", sys.version.split()[0]),
        (
            "peak RSS from",
            "GNU time %M (wait4 of the command)" if GNU_TIME.exists() else "os.wait4 of the child",
        ),
        ("mloci", first_line([mloci_bin(), "--version"])),
        ("oras SDK", oras_version),
        ("skopeo", first_line(["skopeo", "--version"])),
        ("registry", first_line([registry, "--version"])),
        ("curl", first_line(["curl", "--version"])),
        ("sha256sum", first_line(["sha256sum", "--version"])),
    ]


def markdown_report(rows: list[Row], facts: list[tuple[str, str]]) -> str:
    def table(header: list[str], body: list[list[str]]) -> list[str]:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines.extend("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in body)
        return lines

    out = ["# mloci transfer benchmark", "", "Produced by `bench/transfer.py`.", ""]
    out += ["## Machine", "", *table(["fact", "value"], [list(fact) for fact in facts]), ""]
    out += ["## Results", "", *table(HEADER, [cells(row) for row in rows]), ""]
    out += ["## Ratios", "", "Wall time; above 1 means mloci is slower.", ""]
    out += [*table(["ratio", "value"], [list(line) for line in ratio_lines(rows)]), ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def child_env(workdir: Path) -> dict[str, str]:
    """The environment of every timed child: no registry default, no proxy for loopback."""
    env = {key: value for key, value in os.environ.items() if key != "MLOCI_REGISTRY"}
    env.update(
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        MLOCI_HOME=str(workdir / "mloci-home-default"),
        TMPDIR=str(workdir / "tmp"),
    )
    return env


def benchmark(workdir: Path, size: int, repeat: int) -> list[Row]:
    (workdir / "tmp").mkdir()
    print(f"writing a {size / MIB:.0f} MiB bundle in {workdir} ...", flush=True)
    bundle = workdir / "bundle"
    model = write_bundle(bundle, size)
    digest = warm_and_digest(model)
    registry = LocalRegistry(workdir)
    registry.start()
    print(f"registry on {registry.host}; measuring (each line is the best of {repeat}):", flush=True)
    try:
        ctx = Context(workdir, bundle, model, size, digest, registry.host, repeat, child_env(workdir))
        measure_floors(ctx)
        measure_mloci(ctx)
        measure_skopeo(ctx)
        measure_oras(ctx)
    finally:
        registry.stop()
    return ctx.rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = args.workdir or default_work_parent()
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="mloci-bench-", dir=parent))
    try:
        rows = benchmark(workdir, args.size, args.repeat)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(text_report(rows))
    if args.markdown is not None:
        args.markdown.write_text(markdown_report(rows, machine_facts(args.size, args.repeat)))
        print(f"\nwrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
