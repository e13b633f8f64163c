from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest
from helpers import SHARED

from mloci.bundle import load_bundle, pack
from mloci.bundle.git import git_state
from mloci.bundle.pack import with_git
from mloci.types import annotations as ann
from mloci.types import mediatype


def packed_digest(bundle: Path) -> str:
    return str(pack(with_git(load_bundle(bundle), git_state(bundle))).digest)


def test_same_content_same_digest_despite_mtimes_owners_and_copy(bundle: Path, tmp_path: Path) -> None:
    first = packed_digest(bundle)
    copy = tmp_path / "elsewhere" / "renamed-dir"
    shutil.copytree(bundle, copy)
    for path in copy.iterdir():
        os.utime(path, (1, 1))
        path.chmod(0o600)
    assert packed_digest(copy) == first


def test_any_content_change_changes_the_digest(bundle: Path) -> None:
    first = packed_digest(bundle)
    with (bundle / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    assert packed_digest(bundle) != first


def test_source_date_epoch_sets_created(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    packed = pack(load_bundle(bundle))
    assert packed.manifest.annotation(ann.CREATED) == "2023-11-14T22:13:20Z"


def test_artifact_layout_is_modelpack(bundle: Path) -> None:
    packed = pack(load_bundle(bundle))
    manifest = json.loads(packed.manifest_bytes)
    assert manifest["mediaType"] == mediatype.OCI_MANIFEST
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    paths = [layer["annotations"][ann.MODEL_FILEPATH] for layer in manifest["layers"]]
    assert paths == sorted(paths)
    for layer in manifest["layers"]:
        assert layer["annotations"][ann.TITLE] == layer["annotations"][ann.MODEL_FILEPATH]
        assert layer["mediaType"].endswith(".v1.raw")
    kinds = {layer["annotations"][ann.MODEL_FILEPATH]: layer["mediaType"] for layer in manifest["layers"]}
    assert kinds["model.onnx"] == "application/vnd.cncf.model.weight.v1.raw"
    assert kinds["manifest.json"] == "application/vnd.cncf.model.doc.v1.raw"
    annotations = manifest["annotations"]
    assert annotations[ann.VERSION] == "1.0.0"
    assert annotations[ann.TITLE] == "churn-model"
    assert annotations[ann.CREATED] == "2026-11-23T00:00:00Z"
    assert annotations[ann.FRAMEWORK] == "onnx-1.23"
    assert json.loads(annotations[ann.METRICS])["auc"] == 0.8683


def test_config_validates_against_the_modelpack_schema(bundle: Path) -> None:
    schema = json.loads((SHARED / "interop" / "modelpack" / "config-schema.json").read_text())
    packed = pack(load_bundle(bundle))
    config = json.loads(packed.config.data or b"")
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(config)
    assert config["modelfs"]["diffIds"] == [str(b.descriptor.digest) for b in packed.layers]
    assert config["descriptor"]["licenses"] == ["Apache-2.0"]
    assert config["config"]["format"] == "onnx"


def test_manifest_json_layer_carries_the_normalized_manifest(bundle: Path) -> None:
    packed = pack(load_bundle(bundle))
    (layer,) = [b for b in packed.layers if b.descriptor.annotation(ann.ROLE) == ann.ROLE_BUNDLE_MANIFEST]
    document = json.loads(layer.data or b"")
    assert document["name"] == "churn-model"
    assert document["metrics"]["auc"] == 0.8683  # merged from metrics.json


def test_build_metadata_becomes_a_valid_tag(bundle: Path) -> None:
    document = json.loads((bundle / "manifest.json").read_text())
    document["version"] = "1.0.0+build.7"
    (bundle / "manifest.json").write_text(json.dumps(document))
    assert pack(load_bundle(bundle)).tags == ("1.0.0_build.7",)
