"""Many-files benchmark: push and pull a bundle of 100,000 small files, against tar + curl.

Run from the repository root with the venv that holds mloci::

    .venv/bin/python bench/many_files.py
    .venv/bin/python bench/many_files.py --files 20000 --size 2048 --repeat 3 --markdown /tmp/many.md

What it does: writes a bundle of ``--files`` incompressible files of ``--size`` bytes each
(``data/<dir>/<n>.bin``, 1,000 per directory), starts its own ``docker-registry`` on 127.0.0.1
(see ``bench/transfer.py``), warms the page cache, then times, ``--repeat`` times and
interleaved, each pair in a child process:

* ``mloci push`` (fresh repository, fresh ``$MLOCI_HOME``) against ``tar c | curl PUT`` of the
  same directory as one monolithic blob upload (the tar's digest is computed beforehand, untimed);
* ``mloci pull`` (fresh directory) against ``curl GET | tar x`` of that blob.

Reported: median and range of each, the median ratios, the manifest size, mloci's peak RSS
(``os.wait4``), and whether every push produced the same manifest digest.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import LocalRegistry, cpu_model, curl_base, first_line, start_upload

VENV_BIN = Path(sys.executable).parent
PER_DIR = 1000


def write_bundle(root: Path, files: int, size: int) -> None:
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"name": "many-files", "version": "1.0.0"}))
    for n in range(files):
        directory = root / "data" / f"{n // PER_DIR:04d}"
        if n % PER_DIR == 0:
            directory.mkdir(parents=True)
        (directory / f"{n:06d}.bin").write_bytes(os.urandom(size))


def timed(command: str, env: dict[str, str]) -> float:
    """Wall seconds of a shell pipeline; raises on failure."""
    start = time.perf_counter()
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], env=env, capture_output=True, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:80]} failed: {done.stderr.decode(errors='replace')[-500:]}")
    return wall


def peak_rss(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Like ``timed`` for one command (not a pipeline), with its own peak RSS from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)[:80]} failed: {err.decode(errors='replace')[-500:]}")
    return wall, usage.ru_maxrss, out.decode()


def describe(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=2048, help="bytes per file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", type=Path, help="also write the results as markdown here")
    parser.add_argument(
        "--bundle", type=Path, help="reuse a bundle kept by an earlier --keep run (creating files is slow)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="write the bundle outside the work directory and keep it"
    )
    args = parser.parse_args(argv)

    mloci = str(VENV_BIN / "mloci")
    with tempfile.TemporaryDirectory(prefix="mloci-many-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        bundle = args.bundle or work / "bundle"
        if args.bundle is None:
            if args.keep:
                bundle = (
                    Path(tempfile.mkdtemp(prefix="mloci-many-bundle-", dir=os.environ.get("BENCH_DIR"))) / "b"
                )
            print(f"writing {args.files} files of {args.size} bytes in {bundle} ...", flush=True)
            write_bundle(bundle, args.files, args.size)
        args.files = sum(1 for _ in (bundle / "data").rglob("*.bin"))
        args.size = (bundle / "data" / "0000" / "000000.bin").stat().st_size
        env = {k: v for k, v in os.environ.items() if k != "MLOCI_REGISTRY"}
        env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", TMPDIR=str(work))
        # The peer's tar, deterministic so its digest can be computed once, untimed.
        tar_cmd = f"tar -C {bundle} --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - data"
        tar_digest = (
            "sha256:"
            + subprocess.run(
                ["bash", "-o", "pipefail", "-c", f"{tar_cmd} | sha256sum"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()[0]
        )
        registry = LocalRegistry(work)
        registry.start()
        results: dict[str, list[float]] = {
            "mloci push": [],
            "tar c → curl PUT": [],
            "mloci pull": [],
            "curl GET → tar x": [],
        }
        digests: set[str] = set()
        rss: dict[str, int] = {"push": 0, "pull": 0}
        manifest_size = 0
        layers = 0
        try:
            for run in range(args.repeat):
                repo = f"bench/many-{run}"
                home = work / f"home-{run}"
                run_env = {**env, "MLOCI_HOME": str(home)}
                upload = start_upload(registry.host, f"peer/many-{run}")
                sep = "&" if "?" in upload else "?"
                put = (
                    f"{tar_cmd} | {shlex.join(curl_base())} -X PUT -H 'Content-Type: application/octet-stream' "
                    f"-T - '{upload}{sep}digest={tar_digest}'"
                )
                push_cmd = [mloci, "push", str(bundle), f"{registry.host}/{repo}", "--json"]
                order = (True, False) if run % 2 == 0 else (False, True)  # alternate who goes first
                for mine in order:
                    timed(f"{tar_cmd} > /dev/null", env)  # warm the page cache before each push
                    if mine:
                        wall, kib, out = peak_rss(push_cmd, run_env)
                        results["mloci push"].append(wall)
                        rss["push"] = max(rss["push"], kib)
                        digest = json.loads(out)["digest"]
                        digests.add(digest)
                    else:
                        results["tar c → curl PUT"].append(timed(put, env))

                out_dir = work / f"pulled-{run}"
                peer_dir = work / f"peer-{run}"
                peer_dir.mkdir()
                get = (
                    f"{shlex.join(curl_base())} 'http://{registry.host}/v2/peer/many-{run}/blobs/{tar_digest}' "
                    f"| tar -C {peer_dir} -xf -"
                )
                pull_cmd = [mloci, "pull", f"{registry.host}/{repo}@{digest}", "-o", str(out_dir)]
                for mine in order:
                    subprocess.run(["sync"], check=True)  # no dirty pages of the previous step
                    if mine:
                        wall, kib, _ = peak_rss(pull_cmd, run_env)
                        results["mloci pull"].append(wall)
                        rss["pull"] = max(rss["pull"], kib)
                    else:
                        results["curl GET → tar x"].append(timed(get, env))
                got = subprocess.run(
                    [*curl_base(), "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
                     f"http://{registry.host}/v2/{repo}/manifests/{digest}"],
                    check=True, capture_output=True,
                ).stdout  # fmt: skip
                manifest_size = len(got)
                layers = len(json.loads(got)["layers"])
                sample = (
                    f"data/0042/{42 * PER_DIR + 7:06d}.bin"
                    if args.files > 42 * PER_DIR + 7
                    else "data/0000/000007.bin"
                )
                if (out_dir / sample).read_bytes() != (bundle / sample).read_bytes():
                    raise RuntimeError(f"pulled {sample} differs")
                # Nothing is deleted between runs: removing 200,000 files would load the disk during the next one.
                print(
                    f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in results.items()),
                    flush=True,
                )
        finally:
            registry.stop()
        if args.keep and args.bundle is None:
            print(f"bundle kept in {bundle} (reuse it with --bundle)", flush=True)

        # Report before the work directory is removed (deleting 100,000s of files takes minutes).
        med = {k: statistics.median(v) for k, v in results.items()}
        facts = [
            ("date", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
            (
                "content",
                f"{args.files} files x {args.size} bytes ({args.files * args.size / 2**20:.0f} MiB), "
                f"{args.repeat} interleaved runs (median, range)",
            ),
            ("CPUs", f"{os.cpu_count()} x {cpu_model()}"),
            ("Python", sys.version.split()[0]),
            ("registry", first_line([registry.binary, "--version"])),
            ("tar", first_line(["tar", "--version"])),
            ("curl", first_line(["curl", "--version"]).split(" (")[0]),
        ]
        rows = [(name, describe(values)) for name, values in results.items()]
        checks = [
            ("mloci push / (tar c → curl PUT)", f"{med['mloci push'] / med['tar c → curl PUT']:.2f}x"),
            ("mloci pull / (curl GET → tar x)", f"{med['mloci pull'] / med['curl GET → tar x']:.2f}x"),
            ("manifest size", f"{manifest_size} bytes, {layers} layers"),
            ("peak RSS", f"push {rss['push'] / 1024:.0f} MiB, pull {rss['pull'] / 1024:.0f} MiB"),
            (
                "same digest on every run",
                f"{'yes' if len(digests) == 1 else 'NO'}: {', '.join(sorted(digests))}",
            ),
        ]
        lines = ["| fact | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in facts), ""]
        lines += ["| operation | wall time |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
        lines += ["| check | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in checks)]
        report = "\n".join(lines)
        print(report)
        if args.markdown:
            args.markdown.write_text(report + "\n")
    return 0 if len(digests) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
