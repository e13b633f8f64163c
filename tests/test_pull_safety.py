"""Pull never writes outside its target, never leaves partial files, and reports OS failures plainly."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import Registry, Runner

from mloci.store import RegistryStore
from mloci.types import Manifest, Reference, mediatype
from mloci.types.blob import Blob


def tar_bytes(entries: list[tarfile.TarInfo], payload: bytes = b"data") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info in entries:
            if info.isfile():
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def push_layers(registry: Registry, layers: list[tuple[str, str, bytes]]) -> str:
    """Push an artifact whose layers are (media type, file path, bytes); return its pinned reference."""
    store = RegistryStore(registry.host)
    repo = Reference(registry.host, "crafted/model")
    config = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    store.push_blob(repo.repository, config)
    descriptors = []
    for media_type, path, data in layers:
        blob = Blob.of_bytes(media_type, data)
        store.push_blob(repo.repository, blob)
        descriptors.append(
            blob.descriptor.model_copy(update={"annotations": {"org.cncf.model.filepath": path}})
        )
    manifest = Manifest(artifact_type=mediatype.MODEL_ARTIFACT, config=config.descriptor, layers=descriptors)
    pushed = store.push_manifest(repo.with_tag("t"), manifest.to_json(), mediatype.OCI_MANIFEST)
    store.close()
    return f"{repo.name}@{pushed.digest}"


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


def test_modelpack_tar_layers_are_unpacked(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    archive = tar_bytes(
        [member("weights", tarfile.DIRTYPE), member("weights/a.bin"), member("weights/b.bin")]
    )
    ref = push_layers(registry, [(mediatype.model_layer("weight", "tar"), "weights", archive)])
    out = tmp_path / "out"
    result = mloci("pull", ref, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert (out / "weights" / "a.bin").read_bytes() == b"data"
    marker = json.loads((out / ".mloci" / "pull.json").read_text())
    assert marker["files"] == ["weights/a.bin", "weights/b.bin"]


@pytest.mark.parametrize(
    "entry",
    [
        member("../escape.bin"),
        member("/abs.bin"),
        member("link", tarfile.SYMTYPE, "/etc/passwd"),
        member("link", tarfile.SYMTYPE, "../../outside"),
        member("hard", tarfile.LNKTYPE, "/etc/passwd"),
        member("dev", tarfile.CHRTYPE),
    ],
    ids=["dotdot", "absolute", "symlink-absolute", "symlink-up", "hardlink-out", "device"],
)
def test_malicious_tar_layers_are_refused(
    mloci: Runner, registry: Registry, tmp_path: Path, entry: tarfile.TarInfo
) -> None:
    archive = tar_bytes([member("fine.bin"), entry])
    ref = push_layers(registry, [(mediatype.model_layer("weight", "tar"), "weights", archive)])
    parent = tmp_path / "pulls"
    parent.mkdir()
    result = mloci("pull", ref, "-o", parent / "out")
    assert result.exit_code == 6, result.stderr
    assert "Traceback" not in result.stderr
    assert list(parent.iterdir()) == []
    assert not (tmp_path / "escape.bin").exists() and not Path("/abs.bin").exists()


def test_unknown_packing_is_a_clear_error(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    ref = push_layers(registry, [(mediatype.model_layer("weight", "tar+zstd"), "weights", b"zstd?")])
    result = mloci("pull", ref, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "tar+zstd" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_full_disk_fails_cleanly(registry: Registry, tmp_path: Path, mloci_home: Path) -> None:
    """RLIMIT_FSIZE makes writes past 1 MiB fail with EFBIG, the way a full disk fails with ENOSPC."""
    big = 4 << 20
    ref = push_layers(registry, [(mediatype.model_layer("weight"), "model.bin", b"\x07" * big)])
    parent = tmp_path / "pulls"
    parent.mkdir()
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "from mloci.cli import main\n"
        f"sys.exit(main(['pull', {ref!r}, '-o', {str(parent / 'out')!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1, done.stderr
    assert "cannot write into" in done.stderr and "File too large" in done.stderr
    assert done.stderr.count("\n") == 1
    assert list(parent.iterdir()) == []
