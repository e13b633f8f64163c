"""Resumed pull after ``kill -9``: how long the next run takes against a full pull, and what it re-fetched.

Run from the repository root with the venv that holds mloci::

    .venv/bin/python bench/resume.py                 # 1 GiB, kills at 30 % and 60 %
    .venv/bin/python bench/resume.py --size 256M --pairs 1

It pushes one incompressible blob of ``--size`` bytes to its own ``docker-registry`` on 127.0.0.1
(see ``bench/transfer.py``). For each kill point and pair: a full ``mloci pull`` into a fresh
directory, timed; then a pull into another fresh directory, killed with SIGKILL once its partial
download's record says that share arrived, and the next ``mloci pull --json`` into it, timed, with
its ``bytesResumed``. Printed: the medians and the ratio resumed / full, next to the share that was
left to fetch (the ideal ratio, before the re-hash of what is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import LocalRegistry, cpu_model, parse_size, write_bundle

VENV_BIN = Path(sys.executable).parent


def arrived(partials: Path) -> int:
    for sidecar in partials.glob("*.json"):
        try:
            return sum(end - start for start, end in json.loads(sidecar.read_text())["spans"])
        except (OSError, ValueError, KeyError):
            continue
    return 0


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:2]} failed: {done.stderr[-500:]}")
    return wall, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"))
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--at", type=float, nargs="+", default=[0.3, 0.6])
    args = parser.parse_args()
    mloci = str(VENV_BIN / "mloci")
    with tempfile.TemporaryDirectory(prefix="mloci-resume-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        registry = LocalRegistry(work)
        registry.start()
        try:
            env = {k: v for k, v in os.environ.items() if k != "MLOCI_REGISTRY"}
            env["MLOCI_HOME"] = str(work / "home")
            write_bundle(work / "bundle", args.size)
            _, out = timed(
                [mloci, "push", str(work / "bundle"), f"{registry.host}/bench/resume", "--json"], env
            )
            reference = f"{registry.host}/bench/resume@{json.loads(out)['digest']}"
            print(f"{args.size / 2**20:.0f} MiB blob, {cpu_model()}, {os.cpu_count()} cores", flush=True)
            rows = []
            for share in args.at:
                full: list[float] = []
                resumed: list[float] = []
                kept: list[int] = []
                for pair in range(args.pairs):
                    wall, _ = timed([mloci, "pull", reference, "-o", str(work / f"full-{share}-{pair}")], env)
                    full.append(wall)
                    target = work / f"killed-{share}-{pair}"
                    partials = work / f".mloci-partial-{target.name}"
                    child = subprocess.Popen([mloci, "pull", reference, "-o", str(target)], env=env)
                    while arrived(partials) < share * args.size and child.poll() is None:
                        time.sleep(0.005)
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    wall, out = timed([mloci, "pull", reference, "-o", str(target), "--json"], env)
                    resumed.append(wall)
                    kept.append(int(json.loads(out)["bytesResumed"]))
                    print(
                        f"kill at {share:.0%}, pair {pair + 1}: full {full[-1]:.2f} s, resumed {wall:.2f} s",
                        flush=True,
                    )
                rows.append(
                    (share, statistics.median(full), statistics.median(resumed), statistics.median(kept))
                )
        finally:
            registry.stop()
    print(
        "\n| killed at | full pull (median) | resumed run (median) | resumed / full | left to fetch | bytesResumed |"
    )
    print("|---|---|---|---|---|---|")
    for share, full_s, resumed_s, kept_b in rows:
        left = 1 - kept_b / args.size
        print(
            f"| {share:.0%} | {full_s:.2f} s | {resumed_s:.2f} s | {resumed_s / full_s:.2f}x | {left:.0%} | "
            f"{kept_b / 2**20:.0f} MiB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
