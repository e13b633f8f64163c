"""Catalog benchmark: ``mloci serve`` over a registry of 200 models x 25 versions with promotion records.

Run from the repository root (the venv must hold mloci with the ``[serve]`` extra)::

    .venv/bin/python bench/catalog.py                       # 200 x 25, as in issue 12
    .venv/bin/python bench/catalog.py --models 20 --versions 5 --markdown /tmp/catalog.md

What it does: starts its own ``docker-registry`` on 127.0.0.1, fills namespace ``bench`` with
``--models`` model repositories of ``--versions`` ModelPack manifests each (distinct metrics per
version; blobs shared within a model), and promotion records for three environments (dev, staging,
prod) written by ``mloci.ops.promote``. Then it starts ``mloci serve`` as a child process with a
fresh cache and measures:

- cold start: from process start to the first complete models page (every model read);
- warm p50/p95 of the models page and of one model page (``--requests`` sequential requests each,
  measured by the client over loopback, so an upper bound of the server time);
- the server's peak RSS (``VmHWM``);
- a peer measured in the same run: ``mloci.ops.listing.list_versions`` (what ``mloci ls`` does) over
  every repository, 16 at a time, cold — the catalog's cold start against it is the ratio printed.

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from helpers import Registry  # noqa: E402

from mloci.ops.listing import list_versions  # noqa: E402
from mloci.ops.promote import promote  # noqa: E402
from mloci.store import Session, StoreOptions  # noqa: E402
from mloci.types import annotations as ann  # noqa: E402
from mloci.types import mediatype  # noqa: E402
from mloci.types.blob import Blob  # noqa: E402
from mloci.types.manifest import Manifest  # noqa: E402
from mloci.types.reference import Reference  # noqa: E402

ENVIRONMENTS = ("dev", "staging", "prod")


def fill(host: str, models: int, versions: int, workers: int) -> None:
    session = Session(StoreOptions(concurrency=workers))
    store = session.registry(host)
    started = datetime(2026, 1, 1, tzinfo=UTC)

    def one_model(index: int) -> None:
        repository = f"bench/model-{index:03d}"
        config = Blob.of_bytes(mediatype.MODEL_CONFIG, json.dumps({"config": {"format": "onnx"}}).encode())
        weights = Blob.of_bytes(mediatype.model_layer("weight", "raw"), os.urandom(1024))
        bundle_doc = {
            "name": f"model-{index:03d}",
            "version": "1.0.0",
            "description": f"Benchmark model {index}",
            "features": [f"feature_{n}" for n in range(8)],
            "governance": {"owners": [f"team-{index % 7}@example.com"]},
            "license": "Apache-2.0",
        }
        bundle = Blob.of_bytes(mediatype.model_layer("doc", "raw"), json.dumps(bundle_doc).encode())
        for blob in (config, weights, bundle):
            store.push_blob(repository, blob)
        for v in range(versions):
            version = f"1.{v}.0"
            metrics = {"auc": round(0.7 + 0.01 * v + 0.0001 * index, 4), "f1": round(0.5 + 0.005 * v, 4)}
            manifest = Manifest(
                artifact_type=mediatype.MODEL_ARTIFACT,
                config=config.descriptor,
                layers=[
                    bundle.descriptor.model_copy(
                        update={
                            "annotations": {ann.ROLE: ann.ROLE_BUNDLE_MANIFEST, ann.TITLE: "manifest.json"}
                        }
                    ),
                    weights.descriptor.model_copy(update={"annotations": {ann.TITLE: "model.onnx"}}),
                ],
                annotations={
                    ann.VERSION: version,
                    ann.CREATED: (started + timedelta(days=v)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    ann.FRAMEWORK: "onnx-1.17",
                    ann.METRICS: json.dumps(metrics, sort_keys=True, separators=(",", ":")),
                    ann.NAME: f"model-{index:03d}",
                },
            )
            store.push_manifest(
                Reference(host, repository, tag=version), manifest.to_json(), mediatype.OCI_MANIFEST
            )
        base = Reference(host, repository)
        # Two promotions per environment: six records per model.
        for env_index, env in enumerate(ENVIRONMENTS):
            for step in (0, 1):
                version = f"1.{max(versions - 1 - env_index * 2 - (1 - step), 0)}.0"
                promote(base.with_tag(version), env, reason=f"bench {env} {step}", session=session)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one_model, range(models)))
    session.close()


def get(url: str, authorization: str | None = None) -> tuple[int, bytes, float]:
    start = time.perf_counter()
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  (loopback only)
    with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310  (loopback only)
        body = response.read()
        status = response.status
    return status, body, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def vm_hwm_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match[1]) / 1024 if match else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--versions", type=int, default=25)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--keep-registry", type=Path, default=None, help="registry storage kept (and reused) across runs"
    )
    parser.add_argument("--refresh", default="5", help="mloci serve --refresh")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mloci-bench-catalog-") as tmp:
        work = Path(tmp)
        os.environ["MLOCI_HOME"] = str(work / "home")
        os.environ["MLOCI_ACTOR"] = "bench"
        place = args.keep_registry or work / "registry"
        place.mkdir(parents=True, exist_ok=True)
        filled = place / f"filled-{args.models}x{args.versions}"
        (place / "registry.log").unlink(missing_ok=True)  # the port is read from a fresh log
        registry = Registry(place)
        registry.start()
        try:
            t0 = time.perf_counter()
            if not filled.exists():
                fill(registry.host, args.models, args.versions, args.workers)
                filled.touch()
            fill_s = time.perf_counter() - t0
            print(f"filled {args.models} x {args.versions} in {fill_s:.1f} s", flush=True)

            t0 = time.perf_counter()
            repos = [Reference(registry.host, f"bench/model-{i:03d}") for i in range(args.models)]
            # One session, as a script using the Python API would: one pool and token cache.
            with (
                ThreadPoolExecutor(max_workers=args.workers) as pool,
                Session(StoreOptions(concurrency=16)) as peer,
            ):
                listed = list(pool.map(lambda r: list_versions(r, session=peer), repos))
            peer_s = time.perf_counter() - t0
            assert all(len(v) == args.versions for v in listed)

            env = {**os.environ, "MLOCI_HOME": str(work / "serve-home")}
            command = [
                sys.executable, "-m", "mloci", "serve", "--registry", registry.host, "--namespace", "bench",
                "--port", "0", "--log-level", "warning", "--cache", str(work / "cache"), "--refresh", args.refresh,
            ]  # fmt: skip
            t0 = time.perf_counter()
            server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
            try:
                assert server.stdout is not None
                url = server.stdout.readline().split(": ", 1)[1].strip().rstrip("/")
                listening_s = time.perf_counter() - t0
                status, body, _ = get(url + "/api/v1/models?limit=500")
                cold_s = time.perf_counter() - t0
                assert status == 200 and json.loads(body)["total"] == args.models, body[:200]
                models_page = [get(url + "/")[2] for _ in range(args.requests)]
                name = f"model-{min(7, args.models - 1):03d}"
                model_page = [get(f"{url}/models/{name}")[2] for _ in range(args.requests)]
                api_model = [get(f"{url}/api/v1/models/{name}")[2] for _ in range(args.requests)]
                # A caller with credentials of their own: a view that reads the tag lists again
                # with them (content by digest comes from the shared cache).
                basic = "Basic " + base64.b64encode(b"carol:carol-token").decode()
                status, body, caller_cold_s = get(url + "/api/v1/models?limit=500", basic)
                assert status == 200 and json.loads(body)["total"] == args.models, body[:200]
                caller_page = [get(url + "/", basic)[2] for _ in range(args.requests)]
                rss = vm_hwm_mib(server.pid)
            finally:
                server.terminate()
                server.wait(timeout=30)
        finally:
            registry.stop()

    rows = [
        ("registry fill (bench setup)", f"{fill_s:.1f} s", ""),
        ("peer: list_versions of every repository, cold", f"{peer_s:.2f} s", ""),
        ("server process start to listening", f"{listening_s:.2f} s", "Python imports"),
        ("catalog cold start to complete models list", f"{cold_s:.2f} s", f"{cold_s / peer_s:.2f}x peer; target <= 60 s"),
        ("  of which reading the registry", f"{cold_s - listening_s:.2f} s", f"{(cold_s - listening_s) / peer_s:.2f}x peer"),
        ("warm models page p50 / p95", f"{statistics.median(models_page) * 1000:.1f} / {percentile(models_page, 0.95) * 1000:.1f} ms", "target p95 <= 100 ms"),
        ("warm model page p50 / p95", f"{statistics.median(model_page) * 1000:.1f} / {percentile(model_page, 0.95) * 1000:.1f} ms", "target p95 <= 100 ms"),
        ("warm API model p50 / p95", f"{statistics.median(api_model) * 1000:.1f} / {percentile(api_model, 0.95) * 1000:.1f} ms", ""),
        ("a new caller's first models list (own credentials)", f"{caller_cold_s:.2f} s", f"{caller_cold_s / peer_s:.2f}x peer; tag lists re-read, content shared"),
        ("  that caller's warm models page p50 / p95", f"{statistics.median(caller_page) * 1000:.1f} / {percentile(caller_page, 0.95) * 1000:.1f} ms", ""),
        ("server peak RSS", f"{rss:.0f} MiB", "target <= 300 MiB"),
    ]  # fmt: skip
    lines = [
        f"# mloci catalog benchmark ({args.models} models x {args.versions} versions)",
        "",
        f"{datetime.now(UTC).isoformat(timespec='seconds')} · {os.cpu_count()} CPUs · {platform.platform()} · Python {platform.python_version()}",
        "",
        "| measure | value | note |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
    ]
    print("\n".join(lines))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
