"""pull --connections: one large blob over several ranged connections, each throttled by a proxy."""

from __future__ import annotations

import json
import time
from pathlib import Path

from faultproxy import Fault, FaultProxy
from helpers import Registry, Runner, random_bundle

SIZE = 40 << 20


def pushed(mloci: Runner, registry: Registry, tmp_path: Path) -> tuple[Path, str]:
    bundle = random_bundle(tmp_path, "big", "model.bin", SIZE)
    result = mloci("push", bundle, f"{registry.host}/ml/big", "--json")
    assert result.exit_code == 0, result.stderr
    return bundle, str(json.loads(result.stdout)["digest"])


def timed_pull(mloci: Runner, ref: str, out: Path, connections: int) -> float:
    start = time.monotonic()
    result = mloci("pull", ref, "-o", out, "--connections", str(connections), "-q")
    assert result.exit_code == 0, result.stderr
    return time.monotonic() - start


def test_n_connections_give_about_n_times_on_one_throttled_blob(
    mloci: Runner, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    bundle, digest = pushed(mloci, registry, tmp_path)
    # Every blob response is capped at about 10 MiB/s per connection.
    proxy.add(Fault("GET", r"/blobs/sha256:", delay_per_mib=0.1, times=1000))
    ref = f"{proxy.host}/ml/big@{digest}"
    one = timed_pull(mloci, ref, tmp_path / "one", 1)
    four = timed_pull(mloci, ref, tmp_path / "four", 4)
    assert (tmp_path / "four" / "model.bin").read_bytes() == (bundle / "model.bin").read_bytes()
    ranged = [path for method, path in proxy.log if method == "GET" and "/blobs/" in path]
    assert len(ranged) >= 4 + 1 + 2  # 4 ranges, plus the single-connection pull and small blobs
    assert one > 3.5 and four < one / 2.2, (one, four)


def test_a_range_cut_mid_body_resumes_and_the_digest_is_checked(
    mloci: Runner, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    bundle, digest = pushed(mloci, registry, tmp_path)
    big = json.loads(mloci("inspect", f"{registry.host}/ml/big@{digest}", "--json").stdout)
    blob = next(f["digest"] for f in big["files"] if f["path"] == "model.bin")
    proxy.add(Fault("GET", rf"/blobs/{blob}", cut_response_after=3 << 20, times=2))
    assert timed_pull(mloci, f"{proxy.host}/ml/big@{digest}", tmp_path / "out", 4) >= 0
    assert (tmp_path / "out" / "model.bin").read_bytes() == (bundle / "model.bin").read_bytes()
    # Corrupt the registry's copy: the ranged pull refuses it and leaves nothing.
    path = registry.blob_data_path(blob)
    data = bytearray(path.read_bytes())
    data[SIZE // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = mloci("pull", f"{proxy.host}/ml/big@{digest}", "-o", tmp_path / "bad", "--connections", "4")
    assert result.exit_code == 6 and "does not match" in result.stderr and not (tmp_path / "bad").exists()
