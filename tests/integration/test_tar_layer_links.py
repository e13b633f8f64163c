"""Links in ModelPack tar layers without mloci's file index (as modctl writes them), pulled from a real registry."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers import Registry, Runner

from mloci.store import RegistryStore
from mloci.types import Manifest, Reference, mediatype
from mloci.types.blob import Blob

TAR = mediatype.model_layer("weight", "tar")


def tar_of(*entries: tuple[str, bytes, str]) -> bytes:
    """A tar of (name, type, link target or file content) entries."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, value in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            data = value.encode() if kind == tarfile.REGTYPE else b""
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = value
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def push(registry: Registry, layers: list[tuple[str, str, bytes]], *, unpack: bool = False) -> str:
    """An artifact of (media type, org.cncf.model.filepath, bytes) layers; its pinned reference."""
    store = RegistryStore(registry.host)
    repo = Reference(registry.host, "crafted/links")
    config = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    store.push_blob(repo.repository, config)
    descriptors = []
    for media_type, path, data in layers:
        blob = Blob.of_bytes(media_type, data)
        store.push_blob(repo.repository, blob)
        descriptors.append(
            blob.descriptor.model_copy(
                update={
                    "annotations": {
                        "org.opencontainers.image.title": path,
                        "io.deis.oras.content.unpack": "true",
                    }
                }
                if unpack
                else {"annotations": {"org.cncf.model.filepath": path}}
            )
        )
    manifest = Manifest(artifact_type=mediatype.MODEL_ARTIFACT, config=config.descriptor, layers=descriptors)
    pushed = store.push_manifest(repo.with_tag("t"), manifest.to_json(), mediatype.OCI_MANIFEST)
    store.close()
    return f"{repo.name}@{pushed.digest}"


D, F, S = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_a_later_layer_cannot_write_through_an_earlier_layers_link(
    mloci: Runner, registry: Registry, tmp_path: Path, concurrency: str
) -> None:
    """Regression: layer A's 'weights -> tokenizer' let layer B's 'weights/x' land in tokenizer/ (exit 0)."""
    first = tar_of(("tokenizer", D, ""), ("tokenizer/vocab.txt", F, "v"), ("weights", S, "tokenizer"))
    second = tar_of(("weights", D, ""), ("weights/x.bin", F, "x"))
    ref = push(registry, [(TAR, "tokenizer", first), (TAR, "weights", second)])
    parent = tmp_path / "pulls"
    parent.mkdir()
    result = mloci("pull", ref, "-o", parent / "out", "--concurrency", concurrency)
    assert result.exit_code == 6, result.stderr
    assert "'weights" in result.stderr and result.stderr.count("\n") == 1
    assert list(parent.iterdir()) == []


def test_a_raw_layer_is_not_written_through_a_tar_layers_link(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    layer = tar_of(("config.json", F, "{}"), ("weights", S, "config.json"))
    ref = push(
        registry,
        [(TAR, "config", layer), (mediatype.model_layer("weight"), "weights/model.bin", b"weights")],
    )
    result = mloci("pull", ref, "-o", tmp_path / "out", "--concurrency", "1")
    assert result.exit_code == 6, result.stderr
    assert "'weights/model.bin' would be written through a link" in result.stderr
    assert not (tmp_path / "out").exists()


def test_links_to_files_of_the_same_layer_are_kept(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    layer = tar_of(
        ("model", D, ""),
        ("model/v2.bin", F, "weights"),
        ("model/current.bin", S, "v2.bin"),
        ("model/same.bin", tarfile.LNKTYPE, "model/v2.bin"),
    )
    ref = push(registry, [(TAR, "model", layer)])
    out = tmp_path / "out"
    result = mloci("pull", ref, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert (out / "model" / "current.bin").readlink() == Path("v2.bin")
    assert (out / "model" / "same.bin").read_text() == "weights"
    marker = json.loads((out / ".mloci" / "pull.json").read_text())
    assert marker["files"] == ["model/current.bin", "model/same.bin", "model/v2.bin"]
    (out / "manifest.json").write_text(json.dumps({"name": "relinked", "version": "1.0.0"}))
    again = mloci("push", out, f"{registry.host}/crafted/repushed:1", "--json")
    assert again.exit_code == 0, again.stderr  # a link push accepts: pull and push agree


@pytest.mark.parametrize("oras", [False, True], ids=["modelpack-tar+gzip", "oras-unpack"])
def test_a_directory_gnu_tar_packed_is_unpacked_with_its_file_link(
    mloci: Runner, registry: Registry, tmp_path: Path, oras: bool
) -> None:
    """GNU tar's own output (gzip, GNU format, ./-less names, a link, an executable), as modctl or oras would push it."""
    source = tmp_path / "src"
    (source / "tokenizer" / "sub").mkdir(parents=True)
    (source / "tokenizer" / "sub" / "vocab.txt").write_text("a b c")
    (source / "tokenizer" / "run.sh").write_text("#!/bin/sh\n")
    (source / "tokenizer" / "run.sh").chmod(0o755)
    (source / "tokenizer" / "vocab.txt").symlink_to("sub/vocab.txt")
    archive = tmp_path / "layer.tgz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(source), "tokenizer"], check=True)
    media_type = (
        "application/vnd.oci.image.layer.v1.tar+gzip" if oras else mediatype.model_layer("weight", "tar+gzip")
    )
    ref = push(registry, [(media_type, "tokenizer", archive.read_bytes())], unpack=oras)
    out = tmp_path / "out"
    result = mloci("pull", ref, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert (out / "tokenizer" / "sub" / "vocab.txt").read_text() == "a b c"
    assert (out / "tokenizer" / "vocab.txt").readlink() == Path("sub/vocab.txt")
    assert (out / "tokenizer" / "run.sh").stat().st_mode & 0o100
