"""Tar extraction alone: mloci's extractors against GNU ``tar x`` of the same bytes, pairwise.

Run from the repository root with the venv that holds mloci::

    .venv/bin/python bench/tar_extract.py                          # 100,000 files x 2 KiB, 5 pairs
    .venv/bin/python bench/tar_extract.py --files 20000 --pairs 3 --dir /dev/shm
    .venv/bin/python bench/tar_extract.py --baseline /tmp/base     # also another source tree (main)

It builds one tar in memory (``data/<dir>/<n>.bin``, 1,000 files per directory, ustar headers as
``mloci push`` writes them), then runs ``--pairs`` interleaved rounds, alternating who goes first:
``extract_indexed`` (mloci's own layers: every file listed), ``extract_all`` (a whole layer without
the index, as modctl or ORAS write them) and ``tar -x`` reading the same bytes from a pipe, each into
a fresh directory under ``--dir`` (default: a temporary directory on the disk). Each run is a child
process, so its CPU time (user + system) is measured apart. Printed: median and range of wall and
CPU time of each, and the per-round ratios against ``tar x``. With ``--baseline SRC`` the extractors
of that tree (``git worktree add /tmp/base main``) run too: did a change make extraction slower? (A
tree without ``extract_all`` runs its ``tarfile``-based ``pull._untar`` for whole layers.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PER_DIR = 1000
CHILD = r"""
import os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from mloci.ops import _tarextract as t
from mloci.ops.pull import _untar, safe_path
data = Path(sys.argv[2]).read_bytes()
root, mode = Path(sys.argv[3]), sys.argv[4]
names = Path(sys.argv[5]).read_text().split("\n")
chunks = [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
before, start = os.times(), time.perf_counter()
if mode == "indexed":
    t.extract_indexed(iter(chunks), root, names, lambda n: None, lambda: None)
elif hasattr(t, "extract_all"):
    t.extract_all(iter(chunks), root, safe_path, lambda: None)
else:  # a tree from before extract_all: its tarfile-based extraction of whole layers
    _untar(Path(sys.argv[2]), root)
wall, after = time.perf_counter() - start, os.times()
print(wall, (after.user - before.user) + (after.system - before.system))
"""


def header(name: bytes, size: int) -> bytes:
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = b"0000644\0"
    block[124:136] = b"%011o\0" % size
    block[156:157] = b"0"
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def build(path: Path, files: int, size: int) -> list[str]:
    names = [f"data/{n // PER_DIR:04d}/{n:06d}.bin" for n in range(files)]
    padding = bytes(-size % 512)
    with path.open("wb") as out:
        for name in names:
            out.write(header(name.encode(), size) + os.urandom(size) + padding)
        out.write(bytes(1024))
    return names


def run_mloci(source: Path, archive: Path, target: Path, mode: str, names: Path) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(archive), str(target), mode, str(names)],
        check=True,
        capture_output=True,
        text=True,
    )
    wall, cpu = done.stdout.split()
    return float(wall), float(cpu)


def run_tar(archive: Path, target: Path) -> tuple[float, float]:
    import time  # noqa: PLC0415

    before = os.times()
    start = time.perf_counter()
    with archive.open("rb") as source:
        subprocess.run(["tar", "-x", "-f", "-", "-C", str(target)], stdin=source, check=True)
    wall, after = time.perf_counter() - start, os.times()
    return wall, (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=2048, help="bytes per file")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where to extract (default: a temporary directory)")
    parser.add_argument("--baseline", type=Path, help="another source tree to measure too")
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="mloci-tarx-", dir=args.dir) as tmp:
        work = Path(tmp)
        archive = work / "layer.tar"
        names = work / "names.txt"
        names.write_text("\n".join(build(archive, args.files, args.size)))
        runs: dict[str, list[tuple[float, float]]] = {"tar x": []}
        sources = {"": here, **({" (baseline)": args.baseline.resolve()} if args.baseline else {})}
        for pair in range(args.pairs):
            order = [("tar x", None, "")] + [
                (f"mloci {mode}{label}", source, mode)
                for label, source in sources.items()
                for mode in ("indexed", "all")
            ]
            if pair % 2:
                order.reverse()
            for key, source, mode in order:
                target = work / f"out-{pair}-{len(runs.get(key, []))}-{abs(hash(key))}"
                target.mkdir()
                subprocess.run(["sync"], check=False)
                result = (
                    run_tar(archive, target)
                    if source is None
                    else run_mloci(source, archive, target, mode, names)
                )
                runs.setdefault(key, []).append(result)
                shutil.rmtree(target)
        print(f"{args.files} files x {args.size} bytes, {args.pairs} interleaved rounds, into {work}")
        print("| extractor | wall, median (range) | CPU, median | wall / tar x, median of rounds |")
        print("|---|---|---|---|")
        for key, results in runs.items():
            walls = [w for w, _ in results]
            ratios = [w / t for (w, _), (t, _) in zip(results, runs["tar x"], strict=True)]
            print(
                f"| {key} | {statistics.median(walls):.2f} s ({min(walls):.2f}–{max(walls):.2f}) | "
                f"{statistics.median(c for _, c in results):.2f} s | {statistics.median(ratios):.2f}x |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
