"""Verified pull against curl, pairwise: how much does verifying (hashing) cost on top of the download?

Run from the repository root with the venv that holds mloci::

    .venv/bin/python bench/verified_pull.py              # 1 GiB, 5 pairs
    .venv/bin/python bench/verified_pull.py --size 256M --pairs 3

It pushes one incompressible blob of ``--size`` bytes to its own ``docker-registry`` on 127.0.0.1
(see ``bench/transfer.py``), then runs ``--pairs`` interleaved rounds, taking every order of the contenders in turn:
``mloci pull REF@DIGEST -o DIR`` (streams, hashes and writes the file, verified) and
``curl -o FILE`` of the same blob (writes it, no hashing), and with ``--baseline SRC`` the same pull by
another source tree (``git worktree add /tmp/base main``: did a change make pulls slower?). Each pull
writes a fresh file. Printed:
the median and range of each, of the per-pair ratio mloci / curl, and of each tool's CPU time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import LocalRegistry, cpu_model, curl_base, first_line, parse_size

VENV_BIN = Path(sys.executable).parent
CURL = "curl -o FILE"
MLOCI = "mloci pull (verified)"
BASELINE = "mloci pull, --baseline tree"


def contenders(baseline: Path | None) -> list[str]:
    return [MLOCI, CURL, *([BASELINE] if baseline else [])]


def run(argv: list[str], env: dict[str, str], cpu: list[float]) -> float:
    """Wall seconds of one run; its CPU seconds (user + system, from the kernel) go to ``cpu``."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {err.decode(errors='replace')[-500:]}")
    cpu.append(usage.ru_utime + usage.ru_stime)
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"))
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another mloci source tree (e.g. a worktree of main) pulled as a third contender",
    )
    args = parser.parse_args(argv)
    mloci = str(VENV_BIN / "mloci")
    with tempfile.TemporaryDirectory(prefix="mloci-vpull-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        bundle = work / "bundle"
        bundle.mkdir()
        (bundle / "manifest.json").write_text(json.dumps({"name": "vpull", "version": "1.0.0"}))
        with (bundle / "model.bin").open("wb") as out:
            left = args.size
            while left:
                n = min(left, 8 << 20)
                out.write(os.urandom(n))
                left -= n
        env = {k: v for k, v in os.environ.items() if k != "MLOCI_REGISTRY"}
        env.update(
            NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", MLOCI_HOME=str(work / "home")
        )
        registry = LocalRegistry(work)
        registry.start()
        walls: dict[str, list[float]] = {name: [] for name in contenders(args.baseline)}
        cpus: dict[str, list[float]] = {name: [] for name in walls}
        try:
            pushed = subprocess.run(
                [mloci, "push", str(bundle), f"{registry.host}/bench/vpull", "--json"],
                env=env,
                capture_output=True,
                check=True,
            )
            digest = json.loads(pushed.stdout)["digest"]
            manifest = subprocess.run(
                [mloci, "inspect", f"{registry.host}/bench/vpull@{digest}", "--json"],
                env=env,
                capture_output=True,
                check=True,
            )
            blob = next(f["digest"] for f in json.loads(manifest.stdout)["files"] if f["path"] == "model.bin")
            url = f"http://{registry.host}/v2/bench/vpull/blobs/{blob}"
            subprocess.run(
                [*curl_base(), "-o", "/dev/null", url], env=env, check=True
            )  # warm the registry side
            names = list(walls)
            orders = list(itertools.permutations(names))
            for pair in range(args.pairs):
                ref = f"{registry.host}/bench/vpull@{digest}"
                commands = {
                    CURL: ([*curl_base(), "-o", str(work / f"c{pair}.bin"), url], env),
                    MLOCI: ([mloci, "pull", ref, "-o", str(work / f"m{pair}")], env),
                }
                if args.baseline:
                    commands[BASELINE] = (
                        [sys.executable, "-m", "mloci", "pull", ref, "-o", str(work / f"b{pair}")],
                        {**env, "PYTHONPATH": str(args.baseline.resolve())},
                    )
                # Every order in turn, so each contender follows each other one equally often (what
                # ran just before — its writeback, the pages it freed — shows in the next one's time).
                order = orders[pair % len(orders)]
                for name in order:
                    argv, environment = commands[name]
                    walls[name].append(run(argv, environment, cpus[name]))
                for leftover in (work / f"c{pair}.bin", work / f"m{pair}", work / f"b{pair}"):
                    if leftover.is_dir():
                        shutil.rmtree(leftover)
                    leftover.unlink(missing_ok=True)
                print(
                    f"round {pair + 1}: " + ", ".join(f"{n} {walls[n][-1]:.2f} s" for n in names), flush=True
                )
        finally:
            registry.stop()

    def spread(values: list[float], unit: str) -> str:
        return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}–{max(values):.2f})"

    def ratio(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(walls[a], walls[b], strict=True)]

    lines = [
        "| fact | value |",
        "|---|---|",
        f"| date | {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} |",
        f"| blob | {args.size / 2**20:.0f} MiB, {args.pairs} interleaved rounds (median, range) |",
        f"| CPUs | {os.cpu_count()} x {cpu_model()} |",
        f"| load average at the end | {' '.join(f'{x:.1f}' for x in os.getloadavg())} |",
        f"| curl | {first_line(['curl', '--version']).split(' (')[0]} |",
        "",
        "| measurement | wall time | CPU (user + system) |",
        "|---|---|---|",
        *(f"| {name} | {spread(walls[name], ' s')} | {spread(cpus[name], ' s')} |" for name in walls),
        f"| {MLOCI} / {CURL}, per round | {spread(ratio(MLOCI, CURL), 'x')} | |",
    ]
    if args.baseline:
        lines.append(f"| {BASELINE} / {CURL}, per round | {spread(ratio(BASELINE, CURL), 'x')} | |")
        lines.append(f"| {MLOCI} / {BASELINE}, per round | {spread(ratio(MLOCI, BASELINE), 'x')} | |")
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
