"""Verified pull against curl, pairwise: how much does verifying (hashing) cost on top of the download?

Run from the repository root with the venv that holds mloci::

    .venv/bin/python bench/verified_pull.py              # 1 GiB, 5 pairs
    .venv/bin/python bench/verified_pull.py --size 256M --pairs 3

It pushes one incompressible blob of ``--size`` bytes to its own ``docker-registry`` on 127.0.0.1
(see ``bench/transfer.py``), then runs ``--pairs`` interleaved pairs, alternating which goes first:
``mloci pull REF@DIGEST -o DIR`` (streams, hashes and writes the file, verified) and
``curl -o FILE`` of the same blob (writes it, no hashing). Each pull writes a fresh file. Printed:
the median and range of each, of the per-pair ratio mloci / curl, and of each tool's CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import LocalRegistry, cpu_model, curl_base, first_line, parse_size

VENV_BIN = Path(sys.executable).parent


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
        mloci_s: list[float] = []
        curl_s: list[float] = []
        mloci_cpu: list[float] = []
        curl_cpu: list[float] = []
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
            for pair in range(args.pairs):
                mloci_cmd = [
                    mloci,
                    "pull",
                    f"{registry.host}/bench/vpull@{digest}",
                    "-o",
                    str(work / f"m{pair}"),
                ]
                curl_cmd = [*curl_base(), "-o", str(work / f"c{pair}.bin"), url]
                if pair % 2:
                    curl_s.append(run(curl_cmd, env, curl_cpu))
                    mloci_s.append(run(mloci_cmd, env, mloci_cpu))
                else:
                    mloci_s.append(run(mloci_cmd, env, mloci_cpu))
                    curl_s.append(run(curl_cmd, env, curl_cpu))
                (work / f"c{pair}.bin").unlink()
                (work / f"m{pair}" / "model.bin").unlink()
                print(f"pair {pair + 1}: mloci {mloci_s[-1]:.2f} s, curl {curl_s[-1]:.2f} s", flush=True)
        finally:
            registry.stop()
    ratios = [m / c for m, c in zip(mloci_s, curl_s, strict=True)]

    def spread(values: list[float], unit: str) -> str:
        return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}–{max(values):.2f})"

    lines = [
        "| fact | value |",
        "|---|---|",
        f"| date | {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} |",
        f"| blob | {args.size / 2**20:.0f} MiB, {args.pairs} interleaved pairs (median, range) |",
        f"| CPUs | {os.cpu_count()} x {cpu_model()} |",
        f"| load average at the end | {' '.join(f'{x:.1f}' for x in os.getloadavg())} |",
        f"| curl | {first_line(['curl', '--version']).split(' (')[0]} |",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| mloci pull (verified) | {spread(mloci_s, ' s')} |",
        f"| curl -o FILE | {spread(curl_s, ' s')} |",
        f"| mloci / curl, per pair | {spread(ratios, 'x')} |",
        f"| CPU (user + system): mloci pull | {spread(mloci_cpu, ' s')} |",
        f"| CPU (user + system): curl -o FILE | {spread(curl_cpu, ' s')} |",
    ]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
