"""manifest.json travels as written; mloci's normalized manifest in its own layer when they differ."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mloci.bundle import load_bundle, pack
from mloci.bundle.pack import manifest_document
from mloci.types import annotations as ann
from mloci.types import bundle_metadata


def make_bundle(root: Path, manifest: str) -> Path:
    root.mkdir()
    (root / "manifest.json").write_text(manifest)
    (root / "model.onnx").write_bytes(b"weights")
    return root


def pulled(root: Path, manifest_bytes: bytes, metadata: dict[str, object]) -> None:
    """What pull leaves in the marker directory."""
    (root / ".mloci").mkdir()
    digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    (root / ".mloci" / "pull.json").write_text(
        json.dumps({"digest": "sha256:" + "0" * 64, "layers": [digest]})
    )
    (root / ".mloci" / "manifest.json").write_text(json.dumps(metadata))


def test_a_hand_written_manifest_travels_byte_for_byte_beside_the_normalized_one(tmp_path: Path) -> None:
    text = '{"version": "1.0.0", "name": "m"}'
    packed = pack(load_bundle(make_bundle(tmp_path / "b", text)))
    by_path = {b.descriptor.annotation(ann.MODEL_FILEPATH): b for b in packed.layers}
    assert list(by_path) == [".mloci-manifest.json", "manifest.json", "model.onnx"]  # path order
    assert by_path["manifest.json"].data == text.encode()
    assert by_path["manifest.json"].descriptor.annotation(ann.ROLE) is None
    metadata = by_path[".mloci-manifest.json"]
    assert metadata.data == manifest_document(packed.bundle_manifest)
    assert bundle_metadata.is_metadata_layer(metadata.descriptor)
    assert bundle_metadata.bundle_layer(packed.manifest) == metadata.descriptor


def test_a_normalized_manifest_keeps_the_single_layer(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b", "{}")
    (root / "manifest.json").write_bytes(
        manifest_document(
            load_bundle(make_bundle(tmp_path / "c", '{"name": "m", "version": "1.0.0"}')).manifest
        )
    )
    packed = pack(load_bundle(root))
    [layer] = [b.descriptor for b in packed.layers if b.descriptor.annotation(ann.ROLE)]
    assert layer.annotation(ann.MODEL_FILEPATH) == "manifest.json"
    assert bundle_metadata.metadata_layer(packed.manifest) is None


def test_a_pulled_directory_takes_what_push_filled_in_while_manifest_json_is_unchanged(
    tmp_path: Path,
) -> None:
    text = '{"name": "m", "version": "1.0.0"}'
    root = make_bundle(tmp_path / "b", text)
    stored = {
        "name": "m",
        "version": "1.0.0",
        "git_sha": "a" * 40,
        "git_dirty": False,
        "pack": {"raw": ["x"]},
    }
    pulled(root, text.encode(), stored)
    manifest = load_bundle(root).manifest
    assert manifest.git_sha == "a" * 40 and manifest.git_dirty is False
    assert manifest.pack is not None and manifest.pack.raw == ["x"]

    (root / "manifest.json").write_text(text.replace("1.0.0", "1.0.1"))  # edited: a new bundle
    manifest = load_bundle(root).manifest
    assert manifest.git_sha is None and manifest.pack is None


def test_damaged_bookkeeping_is_ignored(tmp_path: Path) -> None:
    text = '{"name": "m", "version": "1.0.0"}'
    root = make_bundle(tmp_path / "b", text)
    pulled(root, text.encode(), {"name": "m", "version": "1.0.0", "git_sha": "a" * 40})
    (root / ".mloci" / "manifest.json").write_text("{not json")
    assert load_bundle(root).manifest.git_sha is None
    (root / ".mloci" / "manifest.json").write_text(
        json.dumps({"name": "m", "version": "1.0.0", "git_sha": "a" * 40})
    )
    (root / ".mloci" / "pull.json").write_text("[]")
    assert load_bundle(root).manifest.git_sha is None
