"""Directories of many small files as deterministic tar layers with a file index."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from mloci.bundle import load_bundle, pack, tarpack
from mloci.bundle.manifest import BundleManifest
from mloci.errors import UsageError
from mloci.types import annotations as ann
from mloci.types.manifest import canonical_json


def many_files_bundle(root: Path, count: int = 120, manifest: dict[str, object] | None = None) -> Path:
    root.mkdir()
    document = {"name": "tok", "version": "1.0.0", **(manifest or {})}
    (root / "manifest.json").write_text(json.dumps(document))
    (root / "model.onnx").write_bytes(b"weights" * 100)
    vocab = root / "vocab"
    vocab.mkdir()
    for i in range(count):
        (vocab / f"piece-{i:04d}.txt").write_bytes(f"token {i}\n".encode() * 3)
    return root


def layer_paths(bundle: Path) -> dict[str, str]:
    manifest = json.loads(pack(load_bundle(bundle)).manifest_bytes)
    return {layer["annotations"][ann.MODEL_FILEPATH]: layer["mediaType"] for layer in manifest["layers"]}


def test_a_directory_of_many_small_files_becomes_one_tar_layer_and_an_index(tmp_path: Path) -> None:
    bundle = many_files_bundle(tmp_path / "b")
    layers = layer_paths(bundle)
    assert layers == {
        ".mloci-files.json": "application/vnd.cncf.model.doc.v1.raw",
        ".mloci-manifest.json": "application/vnd.cncf.model.doc.v1.raw",  # manifest.json is not normalized
        "manifest.json": "application/vnd.cncf.model.doc.v1.raw",
        "model.onnx": "application/vnd.cncf.model.weight.v1.raw",
        "vocab": "application/vnd.cncf.model.doc.v1.tar",
    }
    packed = pack(load_bundle(bundle))
    blobs = {b.descriptor.annotation(ann.MODEL_FILEPATH): b for b in packed.layers}
    with blobs["vocab"].open() as handle:
        data = handle.read()
    assert len(data) == blobs["vocab"].descriptor.size
    assert f"sha256:{hashlib.sha256(data).hexdigest()}" == str(blobs["vocab"].descriptor.digest)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [f"vocab/piece-{i:04d}.txt" for i in range(120)]
        assert {(m.mode, m.uid, m.gid, m.uname, m.gname, m.mtime, m.type) for m in members} == {
            (0o644, 0, 0, "", "", 0, tarfile.REGTYPE)
        }
        first = tar.extractfile(members[0])
        assert first is not None and first.read() == b"token 0\n" * 3
    index = json.loads(blobs[".mloci-files.json"].data or b"")
    assert index["version"] == 1
    (entry,) = index["layers"]
    assert entry["digest"] == str(blobs["vocab"].descriptor.digest) and entry["path"] == "vocab"
    assert entry["files"][1] == {
        "path": "vocab/piece-0001.txt",
        "size": 24,
        "digest": "sha256:" + hashlib.sha256(b"token 1\n" * 3).hexdigest(),
    }
    assert blobs[".mloci-files.json"].descriptor.annotation(ann.ROLE) == "file-index"
    config = json.loads(packed.config.data or b"")
    assert config["modelfs"]["diffIds"] == [str(b.descriptor.digest) for b in packed.layers]


def test_below_the_threshold_files_stay_raw_layers(tmp_path: Path) -> None:
    layers = layer_paths(many_files_bundle(tmp_path / "b", count=99))
    assert "vocab" not in layers and len(layers) == 102  # 99 files, model, manifest and its metadata


def test_large_files_stay_raw_beside_the_tar_layer(tmp_path: Path) -> None:
    bundle = many_files_bundle(tmp_path / "b")
    (bundle / "vocab" / "big.bin").write_bytes(b"\0" * ((1 << 20) + 1))
    layers = layer_paths(bundle)
    assert layers["vocab/big.bin"].endswith(".raw") and layers["vocab"].endswith(".tar")


def test_pack_section_forces_tar_or_raw(tmp_path: Path) -> None:
    raw = many_files_bundle(tmp_path / "raw", manifest={"pack": {"raw": ["vocab"]}})
    assert "vocab" not in layer_paths(raw)
    tar = many_files_bundle(tmp_path / "tar", count=3, manifest={"pack": {"tar": ["vocab"]}})
    assert set(layer_paths(tar)) == {
        ".mloci-files.json",
        ".mloci-manifest.json",
        "manifest.json",
        "model.onnx",
        "vocab",
    }
    low = many_files_bundle(tmp_path / "low", count=3, manifest={"pack": {"min_files": 3}})
    assert "vocab" in layer_paths(low)


def test_cli_overrides_merge_into_the_manifest() -> None:
    manifest = BundleManifest.model_validate({"name": "x", "version": "1.0.0", "pack": {"tar": ["a"]}})
    merged = tarpack.with_overrides(manifest, [tarpack.parse_override("a=raw"), ("b", "tar")])
    assert merged.pack is not None and merged.pack.tar == ["b"] and merged.pack.raw == ["a"]
    with pytest.raises(UsageError, match="DIR=tar or DIR=raw"):
        tarpack.parse_override("a=zip")
    with pytest.raises(UsageError, match="plain relative path"):
        tarpack.with_overrides(manifest, [tarpack.parse_override("../x=tar")])


def test_same_digest_whatever_the_mtimes_modes_and_walk_order(tmp_path: Path) -> None:
    first = many_files_bundle(tmp_path / "a")
    second = many_files_bundle(tmp_path / "b")
    for i, path in enumerate(sorted((second / "vocab").iterdir(), reverse=True)):
        os.utime(path, (i * 1000, i * 1000))
        path.chmod(0o600 if i % 2 else 0o755)
    assert pack(load_bundle(first)).digest == pack(load_bundle(second)).digest


def test_long_and_non_ascii_paths_use_pax_headers_tarfile_reads(tmp_path: Path) -> None:
    bundle = many_files_bundle(tmp_path / "b", count=0, manifest={"pack": {"tar": ["vocab"]}})
    long_dir = bundle / "vocab" / ("d" * 90)
    long_dir.mkdir()
    names = [f"vocab/{'d' * 90}/{'f' * 40}.txt", "vocab/Größe-日本.txt"]
    for name in names:
        (bundle / name).write_text(name)
    packed = pack(load_bundle(bundle))
    blob = next(b for b in packed.layers if b.descriptor.annotation(ann.MODEL_FILEPATH) == "vocab")
    with blob.open() as handle, tarfile.open(fileobj=io.BytesIO(handle.read())) as tar:
        read = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert read == {name: name for name in names}


def test_pax_record_lengths_count_themselves() -> None:
    for size in range(1, 300):
        record = tarpack._pax_record("path", "x" * size)
        assert int(record.split(b" ")[0]) == len(record)


def test_a_file_that_changes_while_packing_is_refused(tmp_path: Path) -> None:
    bundle = load_bundle(many_files_bundle(tmp_path / "b"))
    (tmp_path / "b" / "vocab" / "piece-0000.txt").write_text("longer than before, surely")
    with pytest.raises(Exception, match="changed while it was being packed"):
        pack(bundle)


def test_a_file_rewritten_after_the_scan_is_packed_as_read_and_not_cached(tmp_path: Path) -> None:
    """The tar-layer cache is keyed by what the scan's ``stat`` saw; a file rewritten (same size)
    between the scan and its read must not leave a cache entry under that key."""
    root = many_files_bundle(tmp_path / "b")
    bundle = load_bundle(root)
    piece = root / "vocab" / "piece-0007.txt"
    piece.write_bytes(b"X" * piece.stat().st_size)  # same size; its ctime (and mtime) change
    cache = tarpack.TarCache(tmp_path / "cache.sqlite")
    try:
        (group,) = tarpack.plan(bundle.files, None).groups
        signature = tarpack._signature(group)
        assert signature is not None
        layer = tarpack.build(group, cache=cache)
        assert cache.get(signature) is None
        digests = {f["path"]: f["digest"] for f in layer.files}
        assert digests["vocab/piece-0007.txt"] == "sha256:" + hashlib.sha256(piece.read_bytes()).hexdigest()
        # Scanned again, the same files are cached, and the next build is a hit with the same digest.
        rescanned = load_bundle(root)
        (group,) = tarpack.plan(rescanned.files, None).groups
        again = tarpack.build(group, cache=cache)
        assert cache.get(tarpack._signature(group) or "") is not None
        assert tarpack.build(group, cache=cache).blob.descriptor == again.blob.descriptor
        assert again.blob.descriptor.digest == layer.blob.descriptor.digest
    finally:
        cache.close()


def test_the_index_is_the_canonical_json_of_its_document_and_survives_the_cache(tmp_path: Path) -> None:
    """The index is assembled from each layer's serialized file list (no dict per file): its bytes
    must be exactly ``canonical_json`` of the document, names that JSON escapes included, and a
    cache hit must give the same bytes as the build."""

    root = many_files_bundle(tmp_path / "b", manifest={"pack": {"tar": ["vocab", "données"]}})
    (root / "vocab" / 'quote"back\u00e9.txt').write_bytes(b"x")
    (root / "données" / "日本").mkdir(parents=True)
    (root / "données" / "日本" / ("n" * 120 + ".txt")).write_bytes(b"y" * 3000)
    bundle = load_bundle(root)
    cache = tarpack.TarCache(tmp_path / "cache.sqlite")
    try:
        groups = tarpack.plan(bundle.files, bundle.manifest.pack).groups
        layers = [tarpack.build(group, cache=cache) for group in groups]
        assert len(layers) == 2
        document = {
            "version": 1,
            "layers": [
                {
                    "digest": str(layer.blob.descriptor.digest),
                    "path": layer.blob.descriptor.annotation(ann.MODEL_FILEPATH),
                    "files": json.loads(layer.files_json),
                }
                for layer in layers
            ],
        }
        index = tarpack.index_blob(layers)
        assert index.data == canonical_json(document)
        hits = [tarpack.build(group, cache=cache) for group in groups]
        assert [hit.files_json for hit in hits] == [layer.files_json for layer in layers]
        assert tarpack.index_blob(hits).data == index.data
    finally:
        cache.close()


def test_entry_offsets_follow_from_the_index_alone(tmp_path: Path) -> None:
    """Each entry's header and data offsets, computed from paths and sizes, are where tarfile finds them."""
    root = many_files_bundle(tmp_path / "b", count=5, manifest={"pack": {"tar": ["vocab"]}})
    (root / "vocab" / ("long-" * 30 + ".txt")).write_bytes(b"z" * 1000)
    (root / "vocab" / "é.txt").write_bytes(b"")
    (root / "vocab" / "block.bin").write_bytes(b"b" * 512)
    bundle = load_bundle(root)
    (group,) = tarpack.plan(bundle.files, bundle.manifest.pack).groups
    layer = tarpack.build(group)
    data = b"".join(tarpack.tar_chunks(group.files))
    assert hashlib.sha256(data).hexdigest() == layer.blob.descriptor.digest.encoded
    offsets = list(tarpack.entry_offsets((f["path"], f["size"]) for f in layer.files))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [f["path"] for f in layer.files]
    assert offsets == [(m.offset, m.offset_data) for m in members]
