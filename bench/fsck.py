"""fsck benchmark: ``mloci fsck`` against ``sha256sum`` over the same local-store blobs, and the
cost of a re-push that checks the blobs it relies on.

Run from the repository root::

    .venv/bin/python bench/fsck.py --size 1G

What it does: makes a fresh ``$MLOCI_HOME``, pushes a bundle with one incompressible
``model.bin`` of ``--size`` bytes to the local store, warms the page cache, then times in child
processes: ``sha256sum`` of every blob (the floor), ``mloci fsck``, an unchanged re-push, and a
re-push after the store's copy of ``model.bin`` was damaged (which replaces it). Peak RSS comes
from GNU ``/usr/bin/time`` when installed. Prints a Markdown table with ratios to the floor.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def run(command: list[str], env: dict[str, str]) -> tuple[float, float | None]:
    """Wall seconds and peak RSS (MiB) of ``command``."""
    gnu_time = shutil.which("time") if Path("/usr/bin/time").exists() else None
    prefix = ["/usr/bin/time", "-f", "%M"] if gnu_time else []
    started = time.perf_counter()
    done = subprocess.run([*prefix, *command], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 6):
        raise SystemExit(f"{command[0]} failed: {done.stderr[-2000:]}")
    rss = float(done.stderr.strip().splitlines()[-1]) / 1024 if gnu_time else None
    return wall, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    args = parser.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="mloci-bench-fsck-") as scratch:
        root = Path(scratch)
        home = root / "home"
        bundle = root / "big"
        bundle.mkdir()
        (bundle / "manifest.json").write_text('{"name": "big", "version": "1.0.0"}')
        with (bundle / "model.bin").open("wb") as handle:
            for _ in range(0, size, 1 << 24):
                handle.write(os.urandom(min(1 << 24, size - handle.tell())))
        env = {**os.environ, "MLOCI_HOME": str(home)}
        mloci = [sys.executable, "-m", "mloci"]
        subprocess.run([*mloci, "push", str(bundle)], env=env, check=True, capture_output=True)
        blobs = sorted(str(p) for p in (home / "oci" / "blobs" / "sha256").iterdir())
        subprocess.run(["cat", *blobs], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        rows = [("sha256sum of every blob (floor)", *run(["sha256sum", *blobs], env))]
        rows.append(("mloci fsck", *run([*mloci, "fsck"], env)))
        rows.append(("mloci push, unchanged", *run([*mloci, "push", str(bundle)], env)))
        largest = max(blobs, key=lambda p: Path(p).stat().st_size)
        with Path(largest).open("r+b") as handle:
            handle.seek(size // 2)
            byte = handle.read(1)
            handle.seek(size // 2)
            handle.write(bytes([byte[0] ^ 0xFF]))
        rows.append(("mloci push, one damaged blob replaced", *run([*mloci, "push", str(bundle)], env)))
        rows.append(("mloci fsck after the repair", *run([*mloci, "fsck"], env)))
    floor = rows[0][1]
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"model.bin: {size / (1 << 20):.0f} MiB\n")
    print("| operation | wall s | x floor | MiB/s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for name, wall, rss in rows:
        rate = size / (1 << 20) / wall
        print(
            f"| {name} | {wall:.3f} | {wall / floor:.2f} | {rate:.0f} | {rss if rss is None else f'{rss:.1f}'} |"
        )


if __name__ == "__main__":
    main()
