"""Big-model benchmark: one large file pushed and pulled, against curl, with peak RSS and disk use.

Run from the repository root with the venv that holds mloci::

    .venv/bin/python bench/big_model.py --size 20G
    BENCH_DIR=/big/disk .venv/bin/python bench/big_model.py --size 8G --markdown /tmp/big.md

It writes one incompressible ``model.bin`` of ``--size`` bytes, starts its own ``docker-registry``
on 127.0.0.1 (see ``bench/transfer.py``) and times, each once, in this order:

* ``mloci push`` (fresh ``$MLOCI_HOME``) and ``curl -T FILE`` (one monolithic PUT of the same
  bytes to another repository, digest known beforehand, so the registry stores nothing new);
* ``mloci pull REF@DIGEST -o DIR`` (streamed, hashed, written, verified) and ``curl -o FILE``.

For each mloci run: peak RSS (``os.wait4``) and the most disk space its files took beyond the
result, sampled every 0.2 s over ``$MLOCI_HOME``, ``$TMPDIR`` and the pull's output directory
(a temporary copy would show as extra gigabytes; the pulled file is the result, a push's result
is in the registry). Each pulled copy is deleted before the next step. Disk needed: about
3 x ``--size``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import LocalRegistry, cpu_model, curl_base, first_line, parse_size, start_upload

VENV_BIN = Path(sys.executable).parent


class DiskWatch:
    """The most disk space the files under some directories took while a command ran (allocated
    blocks, sampled on a thread every 0.2 s). Other jobs on the machine do not disturb it, unlike
    the filesystem's free space."""

    def __init__(self, roots: list[Path]) -> None:
        self._roots = roots
        self._stop = threading.Event()
        self.peak = self._used()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _used(self) -> int:
        total = 0
        for root in self._roots:
            for directory, _, files in os.walk(root):
                for name in files:
                    with contextlib.suppress(OSError):
                        total += (Path(directory) / name).lstat().st_blocks * 512
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self._used())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self._used())


def run(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one peer command."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)[:80]} failed: {done.stderr.decode(errors='replace')[-500:]}")
    return wall


def timed_rss(argv: list[str], env: dict[str, str], watch: list[Path]) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS KiB, peak bytes under ``watch``, stdout) of one mloci command."""
    disk = DiskWatch(watch)
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        grown = disk.stop()
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)[:80]} failed: {err.read().decode(errors='replace')[-500:]}")
        return wall, usage.ru_maxrss, grown, out.read().decode()


def write_model(path: Path, size: int) -> None:
    block = os.urandom(8 << 20)
    with path.open("wb") as out:
        left = size
        while left:
            # Each block differs (a counter in front), so the file does not deduplicate or compress.
            n = min(left, len(block))
            out.write(left.to_bytes(8, "big") + block[8:n] if n >= 8 else block[:n])
            left -= n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=parse_size, default=parse_size("20G"))
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    mloci = str(VENV_BIN / "mloci")
    gib = args.size / 2**30
    with tempfile.TemporaryDirectory(prefix="mloci-big-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        bundle = work / "bundle"
        bundle.mkdir()
        (bundle / "manifest.json").write_text(json.dumps({"name": "big", "version": "1.0.0"}))
        print(f"writing {gib:.1f} GiB model.bin ...", flush=True)
        write_model(bundle / "model.bin", args.size)
        env = {k: v for k, v in os.environ.items() if k != "MLOCI_REGISTRY"}
        # mloci's own files (home, cache, temporary files) and the pull's output are all under these.
        (work / "home").mkdir()
        (work / "tmp").mkdir()
        mine = [work / "home", work / "tmp"]
        env.update(
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            MLOCI_HOME=str(work / "home"),
            TMPDIR=str(work / "tmp"),
        )
        registry = LocalRegistry(work)
        registry.start()
        rows: list[tuple[str, float, str, str]] = []
        loads: list[float] = []
        try:
            subprocess.run(["sync"], check=True)
            wall, rss, grown, out = timed_rss(
                [mloci, "push", str(bundle), f"{registry.host}/bench/big", "--json"], env, mine
            )
            digest = json.loads(out)["digest"]
            # A push's result is in the registry: whatever mloci stores itself is beyond it.
            rows.append(("mloci push", wall, f"{rss / 1024:.0f}", f"{grown / 2**20:.0f}"))
            loads.append(os.getloadavg()[0])
            print(f"mloci push {wall:.1f} s, peak RSS {rss / 1024:.0f} MiB", flush=True)
            inspect = subprocess.run(
                [mloci, "inspect", f"{registry.host}/bench/big@{digest}", "--json"],
                env=env, capture_output=True, check=True,
            )  # fmt: skip
            blob = next(f["digest"] for f in json.loads(inspect.stdout)["files"] if f["path"] == "model.bin")
            upload = start_upload(registry.host, "peer/big")
            sep = "&" if "?" in upload else "?"
            subprocess.run(["sync"], check=True)
            wall = run(
                [*curl_base(), "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                 "-T", str(bundle / "model.bin"), f"{upload}{sep}digest={blob}", "-o", "/dev/null"],
                env,
            )  # fmt: skip
            rows.append(("curl PUT (monolithic)", wall, "-", "-"))
            loads.append(os.getloadavg()[0])
            print(f"curl PUT {wall:.1f} s", flush=True)

            subprocess.run(["sync"], check=True)
            pulled = work / "pulled"
            wall, rss, grown, _ = timed_rss(
                [mloci, "pull", f"{registry.host}/bench/big@{digest}", "-o", str(pulled)],
                env,
                [*mine, pulled],
            )
            if (pulled / "model.bin").stat().st_size != args.size:
                raise RuntimeError("pulled model.bin has the wrong size")
            rows.append(
                ("mloci pull (verified)", wall, f"{rss / 1024:.0f}", f"{(grown - args.size) / 2**20:.0f}")
            )
            loads.append(os.getloadavg()[0])
            print(f"mloci pull {wall:.1f} s, peak RSS {rss / 1024:.0f} MiB", flush=True)
            (pulled / "model.bin").unlink()
            subprocess.run(["sync"], check=True)
            target = work / "curl.bin"
            wall = run(
                [*curl_base(), "-o", str(target), f"http://{registry.host}/v2/peer/big/blobs/{blob}"], env
            )
            rows.append(("curl GET -o FILE", wall, "-", "-"))
            loads.append(os.getloadavg()[0])
            print(f"curl GET {wall:.1f} s", flush=True)
            target.unlink()
        finally:
            registry.stop()
        print("removing the data ...", flush=True)
    times = {name: wall for name, wall, _, _ in rows}
    lines = [
        "| fact | value |",
        "|---|---|",
        f"| date | {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} |",
        f"| model.bin | {gib:.1f} GiB, incompressible, each operation once |",
        f"| CPUs | {os.cpu_count()} x {cpu_model()} |",
        f"| load average after each step | {', '.join(f'{x:.1f}' for x in loads)} |",
        f"| registry | {first_line([registry.binary, '--version'])} |",
        f"| curl | {first_line(['curl', '--version']).split(' (')[0]} |",
        "",
        "| operation | wall s | MiB/s | peak RSS MiB | disk beyond the result, MiB |",
        "|---|---|---|---|---|",
        *(f"| {n} | {w:.1f} | {args.size / 2**20 / w:.0f} | {r} | {d} |" for n, w, r, d in rows),
        "",
        "| ratio | value |",
        "|---|---|",
        f"| mloci push / curl PUT | {times['mloci push'] / times['curl PUT (monolithic)']:.2f}x |",
        f"| mloci pull / curl GET -o FILE | {times['mloci pull (verified)'] / times['curl GET -o FILE']:.2f}x |",
    ]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
