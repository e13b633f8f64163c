"""Load benchmark for ``mloci index serve``: many clients downloading one large wheel at once.

Run from the repository root (the venv must hold mloci with its ``index`` extra)::

    .venv/bin/python bench/index_load.py --size 50M --clients 50

What it does: starts its own ``docker-registry`` (CNCF distribution) on 127.0.0.1, publishes one
wheel holding ``--size`` incompressible bytes, starts ``mloci index serve`` in a child process, then
runs ``--clients`` concurrent downloads of the wheel twice: through the index
(``/packages/…``, streamed from the registry and verified by the server) and directly from the
registry (``GET /v2/…/blobs/…``), the peer measured in the same run. Every client hashes what it
received and checks it against the wheel's sha256. Reported: latency per download (p50, p99, max),
aggregate throughput, and the index server's resident memory (``VmRSS`` sampled every 20 ms; before
the load and at its peak) -- flat memory means the server streams rather than buffers. The clients
are threads of this process (one HTTP connection each), the same for both rows. Only 127.0.0.1
is ever contacted.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from helpers import Registry  # noqa: E402  (test helpers: the real registry process)
from pydists import write_wheel  # noqa: E402

from mloci.ops.wheel import push_distributions  # noqa: E402

MIB = 1 << 20
READ = 1 << 20
SERVE = (sys.executable, "-m", "mloci", "index", "serve", "--read-only", "--log-level", "warning")


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Sampler:
    """The peak VmRSS of a process while running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Row:
    name: str
    latencies: list[float]
    wall: float
    total_bytes: int
    failures: int
    rss_before: float | None = None
    rss_peak: float | None = None

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return (
            ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")
        )

    @property
    def throughput(self) -> float:
        return self.total_bytes / MIB / self.wall if self.wall else 0.0


def download(port: int, path: str, expected: str) -> tuple[float, int, bool]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        hasher = hashlib.sha256()
        size = 0
        while chunk := response.read(READ):
            hasher.update(chunk)
            size += len(chunk)
        ok = response.status == 200 and hasher.hexdigest() == expected
    except (OSError, http.client.HTTPException):
        return time.perf_counter() - started, 0, False
    finally:
        connection.close()
    return time.perf_counter() - started, size, ok


def load(name: str, port: int, path: str, expected: str, clients: int) -> Row:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda _: download(port, path, expected), range(clients)))
    wall = time.perf_counter() - started
    return Row(
        name=name,
        latencies=[r[0] for r in results],
        wall=wall,
        total_bytes=sum(r[1] for r in results),
        failures=sum(1 for r in results if not r[2]),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="50M", help="wheel payload size (default 50M)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent downloads (default 50)")
    args = parser.parse_args()
    size = parse_size(args.size)

    work = Path(tempfile.mkdtemp(prefix="mloci-index-bench-"))
    os.environ["MLOCI_HOME"] = str(work / "home")
    (work / "registry").mkdir()
    registry = Registry(work / "registry")
    registry.start()
    server: subprocess.Popen[bytes] | None = None
    try:
        wheel = write_wheel(work / "dist", "benchkit", "1.0", payload=os.urandom(size))
        expected = hashlib.sha256(wheel.read_bytes()).hexdigest()
        wheel_mib = wheel.stat().st_size / MIB
        push_distributions([wheel], f"{registry.host}/py")
        port = free_port()
        server = subprocess.Popen(
            [*SERVE, "--registry", registry.host, "--namespace", "py", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the index server did not start") from None
                time.sleep(0.1)
        index_path = f"/packages/benchkit/1.0/{wheel.name}"
        download(port, index_path, expected)  # warm: connections, page cache
        rss_before = rss_mib(server.pid)
        with Sampler(server.pid) as sampler:
            through = load("through mloci index serve", port, index_path, expected, args.clients)
        through.rss_before, through.rss_peak = rss_before, sampler.peak
        registry_port = int(registry.host.rsplit(":", 1)[1])
        blob_path = f"/v2/py/benchkit/blobs/sha256:{expected}"
        direct = load("direct registry GET (peer)", registry_port, blob_path, expected, args.clients)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)  # this run's own temporary directory

    print(f"# index load: {args.clients} clients x {wheel_mib:.1f} MiB wheel")
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )
    print()
    print("| path | p50 s | p99 s | max s | aggregate MiB/s | failed | server RSS before → peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for row in (through, direct):
        rss = f"{row.rss_before:.0f} → {row.rss_peak:.0f}" if row.rss_peak is not None else "-"
        print(
            f"| {row.name} | {row.percentile(0.5):.2f} | {row.percentile(0.99):.2f} | {max(row.latencies):.2f} "
            f"| {row.throughput:.0f} | {row.failures} | {rss} |"
        )
    print()
    print(f"throughput ratio index/direct: {through.throughput / direct.throughput:.2f}")
    print(f"p50 ratio index/direct: {through.percentile(0.5) / statistics.median(direct.latencies):.2f}")
    return 1 if through.failures or direct.failures else 0


if __name__ == "__main__":
    sys.exit(main())
