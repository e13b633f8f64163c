"""Bundles of many small files: tar layers with a file index, through the real CLI and a real registry."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import Registry, Runner, run_json

from mloci.bundle import load_bundle, pack, tarpack
from mloci.bundle.files import FileEntry
from mloci.store import RegistryStore
from mloci.types import Descriptor, Reference, file_index, mediatype
from mloci.types import annotations as ann
from mloci.types.blob import Blob


def many_files_bundle(root: Path, count: int = 150, version: str = "1.0.0") -> Path:
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"name": "tok", "version": version}))
    (root / "model.onnx").write_bytes(b"weights" * 100)
    for i in range(count):
        path = root / "vocab" / f"{i % 3}" / f"piece-{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"token {i}\n".encode() * 5)
    return root


def test_many_files_push_inspect_pull_filter_diff(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    bundle = many_files_bundle(tmp_path / "tok")
    repo = f"{registry.host}/ml/tok"
    pushed = run_json(mloci, "push", bundle, repo)
    digest = pushed["digest"]
    assert (
        pushed["blobsUploaded"] == 6
    )  # config, manifest.json, its metadata, model.onnx, the tar layer, the index

    info = run_json(mloci, "inspect", f"{repo}@{digest}")
    files = {f["path"]: f for f in info["files"]}  # type: ignore[attr-defined]
    assert len(files) == 152 and "vocab" not in files and file_index.FILE_INDEX_PATH not in files
    piece = files["vocab/1/piece-0001.txt"]
    assert piece["size"] == 40 and piece["mediaType"] == "application/vnd.cncf.model.doc.v1.tar"

    # GNU tar reads the layer as the registry stores it.
    listing = subprocess.run(
        ["tar", "-tvf", registry.blob_data_path(piece["layer"])], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert len(listing) == 150 and listing[0].split()[-1] == "vocab/0/piece-0000.txt"
    assert listing[0].startswith("-rw-r--r-- 0/0")

    out = tmp_path / "out"
    assert mloci("pull", f"{repo}@{digest}", "-o", out).exit_code == 0
    for i in (0, 77, 149):
        name = f"vocab/{i % 3}/piece-{i:04d}.txt"
        assert (out / name).read_bytes() == (bundle / name).read_bytes()
    assert not (out / file_index.FILE_INDEX_PATH).exists()
    # A pulled bundle packs to the same digest, and a repeated pull is a no-op.
    assert run_json(mloci, "push", out, repo)["digest"] == digest
    assert run_json(mloci, "pull", f"{repo}@{digest}", "-o", out)["unchanged"] is True

    # --filter picks files inside the tar layer, not the whole directory.
    some = tmp_path / "some"
    pulled = run_json(mloci, "pull", f"{repo}@{digest}", "-o", some, "--filter", "piece-000[12].txt")
    assert pulled["files"][0]["path"] == "vocab"  # type: ignore[index]
    written = sorted(p.relative_to(some).as_posix() for p in some.rglob("*") if p.is_file())
    assert written == [
        ".mloci/manifest.json",  # the normalized bundle manifest, beside the marker
        ".mloci/pull.json",
        "vocab/1/piece-0001.txt",
        "vocab/2/piece-0002.txt",
    ]

    # diff sees the one file that changed.
    (bundle / "vocab" / "2" / "piece-0005.txt").write_text("changed\n")
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "version": "1.0.1"}))
    second = run_json(mloci, "push", bundle, repo)["digest"]
    changed = run_json(mloci, "diff", f"{repo}@{digest}", f"{repo}@{second}")
    assert set(changed["files"]) == {"manifest.json", "vocab/2/piece-0005.txt"}  # type: ignore[arg-type]
    assert changed["unchangedFiles"] == 150


def test_cli_pack_option_keeps_files_raw(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    bundle = many_files_bundle(tmp_path / "tok", count=100)
    pushed = run_json(mloci, "push", bundle, f"{registry.host}/ml/tok", "--pack", "vocab=raw")
    assert pushed["blobsUploaded"] == 104  # config, manifest.json, its metadata, model.onnx and 100 files
    info = run_json(mloci, "inspect", f"{registry.host}/ml/tok@{pushed['digest']}")
    assert all(f["mediaType"].endswith(".raw") for f in info["files"])  # type: ignore[attr-defined]
    bad = mloci("push", bundle, f"{registry.host}/ml/tok", "--pack", "vocab")
    assert bad.exit_code == 2 and "DIR=tar or DIR=raw" in bad.stderr


def test_a_tar_layer_missing_an_indexed_file_is_refused(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    """The index and the tar must agree: a crafted artifact whose index names an absent file fails the pull."""
    packed = pack(load_bundle(many_files_bundle(tmp_path / "tok")))
    index = next(b for b in packed.layers if b.descriptor.annotation(ann.ROLE) == "file-index")
    document = json.loads(index.data or b"")
    document["layers"][0]["files"].append(
        {"path": "vocab/evil.txt", "size": 1, "digest": "sha256:" + "0" * 64}
    )
    data = json.dumps(document).encode()
    descriptor = Descriptor.of_bytes(
        index.descriptor.media_type, data, annotations=index.descriptor.annotations
    )
    forged = Blob(descriptor, data=data)
    layers = [forged if b is index else b for b in packed.layers]
    manifest = packed.manifest.model_copy(update={"layers": [b.descriptor for b in layers]})
    ref = Reference.parse(f"{registry.host}/ml/forged:1")
    store = RegistryStore(registry.host)
    try:
        for blob in (packed.config, *layers):
            store.push_blob(ref.repository, blob)
        store.push_manifest(ref, manifest.to_json(), mediatype.OCI_MANIFEST)
    finally:
        store.close()
    out = tmp_path / "out"
    result = mloci("pull", str(ref), "-o", out)
    assert result.exit_code == 6 and "vocab/evil.txt" in result.stderr and not out.exists()


def test_many_files_through_the_local_store(mloci: Runner, tmp_path: Path) -> None:
    bundle = many_files_bundle(tmp_path / "tok")
    pushed = run_json(mloci, "push", bundle)
    out = tmp_path / "out"
    assert mloci("pull", f"tok@{pushed['digest']}", "-o", out).exit_code == 0
    assert (out / "vocab/2/piece-0149.txt").read_bytes() == (bundle / "vocab/2/piece-0149.txt").read_bytes()


def test_sbom_lists_the_files_of_tar_layers_from_a_directory_and_a_reference(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    bundle = many_files_bundle(tmp_path / "tok")
    digest = run_json(mloci, "push", bundle, f"{registry.host}/ml/tok")["digest"]
    from_dir = mloci("sbom", bundle)
    from_ref = mloci("sbom", f"{registry.host}/ml/tok@{digest}")
    assert from_dir.exit_code == 0 and from_ref.exit_code == 0, from_dir.stderr + from_ref.stderr
    for output in (from_dir.stdout, from_ref.stdout):
        assert "vocab/1/piece-0001.txt" in output and file_index.FILE_INDEX_PATH not in output


def test_a_repeated_pull_restores_a_removed_file_of_a_tar_layer(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    bundle = many_files_bundle(tmp_path / "tok")
    digest = run_json(mloci, "push", bundle, f"{registry.host}/ml/tok")["digest"]
    out = tmp_path / "out"
    assert mloci("pull", f"{registry.host}/ml/tok@{digest}", "-o", out).exit_code == 0
    (out / "vocab/1/piece-0004.txt").unlink()
    again = run_json(mloci, "pull", f"{registry.host}/ml/tok@{digest}", "-o", out)
    assert again["unchanged"] is False
    assert (out / "vocab/1/piece-0004.txt").read_bytes() == (bundle / "vocab/1/piece-0004.txt").read_bytes()


def test_an_index_placing_files_outside_their_tar_layer_is_refused(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    packed = pack(load_bundle(many_files_bundle(tmp_path / "tok")))
    index = next(b for b in packed.layers if b.descriptor.annotation(ann.ROLE) == "file-index")
    document = json.loads(index.data or b"")
    document["layers"][0]["files"][0]["path"] = "model.onnx"
    data = json.dumps(document).encode()
    forged = Blob(
        Descriptor.of_bytes(index.descriptor.media_type, data, annotations=index.descriptor.annotations),
        data=data,
    )
    layers = [forged if b is index else b for b in packed.layers]
    manifest = packed.manifest.model_copy(update={"layers": [b.descriptor for b in layers]})
    ref = Reference.parse(f"{registry.host}/ml/forged:2")
    store = RegistryStore(registry.host)
    try:
        for blob in (packed.config, *layers):
            store.push_blob(ref.repository, blob)
        store.push_manifest(ref, manifest.to_json(), mediatype.OCI_MANIFEST)
    finally:
        store.close()
    result = mloci("pull", str(ref), "-o", tmp_path / "out")
    assert result.exit_code == 6 and "outside" in result.stderr and not (tmp_path / "out").exists()


def test_an_unchanged_directory_is_not_read_again_on_the_next_push(
    mloci: Runner, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = many_files_bundle(tmp_path / "tok")
    reads: list[str] = []
    original = tarpack._read_small_stat

    def counting(entry: FileEntry) -> tuple[bytes, tuple[int, int, int, int]]:
        reads.append(entry.path)
        return original(entry)

    monkeypatch.setattr(tarpack, "_read_small_stat", counting)
    first = run_json(mloci, "push", bundle, f"{registry.host}/ml/tok")["digest"]
    assert len(reads) == 150
    reads.clear()
    assert run_json(mloci, "push", bundle, f"{registry.host}/ml/other")["digest"] == first
    assert reads == []  # the layer came from the cache; the registry had (or mounted) the blob
    # A store without the blob: the cached layer is re-generated from the files, and verified there.
    assert run_json(mloci, "push", bundle)["digest"] == first
    assert len(reads) == 150
    reads.clear()
    (bundle / "vocab" / "0" / "piece-0003.txt").write_text("changed")
    assert run_json(mloci, "push", bundle, f"{registry.host}/ml/fourth")["digest"] != first
    assert len(reads) == 150


@pytest.mark.parametrize("raw_path", ["vocab/0", "vocab/0/piece-0000.txt"])
def test_a_raw_layer_clashing_with_a_file_of_a_tar_layer_is_refused(
    mloci: Runner, registry: Registry, tmp_path: Path, raw_path: str
) -> None:
    """A raw layer at a directory or file of an indexed tar layer: exit 6 whichever layer lands first."""
    packed = pack(load_bundle(many_files_bundle(tmp_path / "tok")))
    onnx = next(b for b in packed.layers if b.descriptor.annotation(ann.MODEL_FILEPATH) == "model.onnx")
    annotations = {**(onnx.descriptor.annotations or {}), ann.MODEL_FILEPATH: raw_path, ann.TITLE: raw_path}
    clash = Blob(
        onnx.descriptor.model_copy(update={"annotations": annotations}),
        data=onnx.data,
        path=onnx.path,
        opener=onnx.opener,
    )
    layers = [*packed.layers, clash]
    manifest = packed.manifest.model_copy(update={"layers": [b.descriptor for b in layers]})
    ref = Reference.parse(f"{registry.host}/ml/forged:3")
    store = RegistryStore(registry.host)
    try:
        for blob in (packed.config, *layers):
            store.push_blob(ref.repository, blob)
        store.push_manifest(ref, manifest.to_json(), mediatype.OCI_MANIFEST)
    finally:
        store.close()
    result = mloci("pull", str(ref), "-o", tmp_path / "out")
    assert result.exit_code == 6 and raw_path in result.stderr and not (tmp_path / "out").exists()
