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


def _tree(root: Path) -> dict[str, str]:
    """Every entry below ``root`` with what it is: file content, link target, or 'dir'."""
    entries: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            entries[rel] = f"-> {path.readlink()}"
        elif path.is_dir():
            entries[rel] = "dir"
        else:
            entries[rel] = path.read_text()
    return entries


def _crowded_home(root: Path, outside: Path) -> dict[str, str]:
    """A directory like a home: files, directories, hidden files, links in and out; returns its tree."""
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    (root / ".bashrc").write_text("export A=1")
    (root / ".ssh").mkdir()
    (root / ".ssh" / "id_ed25519").write_text("secret")
    (root / "projects" / "deep").mkdir(parents=True)
    (root / "projects" / "deep" / "x.py").write_text("print(1)")
    (root / "weights").mkdir()
    (root / "weights" / "user.bin").write_text("user weights")
    (root / "link-in").symlink_to("notes.txt")
    (root / "link-out").symlink_to(outside)
    (root / "dangling").symlink_to("nowhere")
    return _tree(root)


def test_force_pull_leaves_every_unrelated_entry(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    """Regression: `pull --force` used to delete every entry of the target (a wiped home directory)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("outside")
    home = tmp_path / "home"
    before = _crowded_home(home, outside)
    archive = tar_bytes([member("weights", tarfile.DIRTYPE), member("weights/a.bin")])
    ref = push_layers(
        registry,
        [
            (mediatype.model_layer("weight"), "model.bin", b"model"),
            (mediatype.model_layer("weight", "tar"), "weights", archive),
        ],
    )
    refused = mloci("pull", ref, "-o", home)
    assert refused.exit_code == 7 and "--force" in refused.stderr
    assert _tree(home) == before

    forced = mloci("pull", ref, "-o", home, "--force", "--json")
    assert forced.exit_code == 0, forced.stderr
    after = _tree(home)
    for name, what in before.items():
        assert after[name] == what, name
    assert after["model.bin"] == "model" and after["weights/a.bin"] == "data"
    assert json.loads(forced.stdout)["replaced"] == []
    assert (outside / "keep.txt").read_text() == "outside"


def test_force_replaces_only_same_named_files_and_says_so(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.bin").write_text("old user file")
    (out / "other.txt").write_text("stays")
    ref = push_layers(registry, [(mediatype.model_layer("weight"), "model.bin", b"model")])
    refused = mloci("pull", ref, "-o", out)
    assert refused.exit_code == 7
    forced = mloci("pull", ref, "-o", out, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert "replaced 1 entries" in forced.stderr and "model.bin" in forced.stderr
    assert (out / "model.bin").read_bytes() == b"model"
    assert (out / "other.txt").read_text() == "stays"


def test_force_never_replaces_a_directory(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "model.bin").mkdir(parents=True)
    (out / "model.bin" / "inner.txt").write_text("stays")
    ref = push_layers(registry, [(mediatype.model_layer("weight"), "model.bin", b"model")])
    refused = mloci("pull", ref, "-o", out, "--force")
    assert refused.exit_code == 7 and "directories model.bin" in refused.stderr
    assert (out / "model.bin" / "inner.txt").read_text() == "stays"


def test_a_new_version_replaces_only_what_the_previous_pull_wrote(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = push_layers(
        registry,
        [
            (mediatype.model_layer("weight"), "sub/old.bin", b"old"),
            (mediatype.model_layer("weight"), "model.bin", b"v1"),
        ],
    )
    assert mloci("pull", first, "-o", out).exit_code == 0
    (out / "sub" / "mine.txt").write_text("added by the user")
    (out / "extra.txt").write_text("also mine")
    second = push_layers(registry, [(mediatype.model_layer("weight"), "model.bin", b"v2")])
    result = mloci("pull", second, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert (out / "model.bin").read_bytes() == b"v2"
    assert not (out / "sub" / "old.bin").exists()
    assert (out / "sub" / "mine.txt").read_text() == "added by the user"
    assert (out / "extra.txt").read_text() == "also mine"
    marker = json.loads((out / ".mloci" / "pull.json").read_text())
    assert marker["files"] == ["model.bin"]


def test_a_hand_edited_marker_cannot_make_pull_delete_outside(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("outside the target")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.txt").write_text("behind a link")
    out = tmp_path / "out"
    (out / ".mloci").mkdir(parents=True)
    (out / "link").symlink_to(elsewhere)
    (out / ".mloci" / "pull.json").write_text(
        json.dumps({"digest": "sha256:" + "0" * 64, "files": ["../victim.txt", str(victim), "link/x.txt"]})
    )
    ref = push_layers(registry, [(mediatype.model_layer("weight"), "model.bin", b"model")])
    assert mloci("pull", ref, "-o", out).exit_code == 0
    assert victim.read_text() == "outside the target"
    assert (elsewhere / "x.txt").read_text() == "behind a link"
    assert (out / "link").is_symlink()
