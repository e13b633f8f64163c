from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from helpers import EXAMPLE, REPO_ROOT, Runner

from mloci import schemas
from mloci.bundle import inspect_bundle, load_bundle
from mloci.bundle.files import layer_kind
from mloci.bundle.init import guess_framework
from mloci.errors import BundleInvalidError


def write_manifest(bundle: Path, **changes: object) -> None:
    path = bundle / "manifest.json"
    document = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    path.write_text(json.dumps(document))


def test_example_bundle_is_valid() -> None:
    bundle = load_bundle(EXAMPLE)
    assert bundle.manifest.name == "churn-model"
    assert bundle.manifest.metrics["auc"] > 0.8
    assert [f.path for f in bundle.files] == sorted(f.path for f in bundle.files)


def test_every_problem_is_reported_in_one_pass_with_its_field_path(bundle: Path) -> None:
    write_manifest(
        bundle,
        version="1.0",
        framwork="onnx",
        license="Apache 2",
        runtime={"latency_p50_ms": 10, "latency_p99_ms": 5},
        inputs=[{"name": "x", "dtype": "float99"}],
        dependencies={"requirements": ["numpy>=1"]},
        files=["model.onnx", "missing.bin"],
    )
    _, problems = inspect_bundle(bundle)
    paths = {p.path for p in problems}
    assert {
        "version",
        "framwork",
        "license",
        "runtime",
        "inputs[0].dtype",
        "dependencies.requirements",
    } <= paths
    assert any("extensions" in p.message for p in problems if p.path == "framwork")
    assert any("not pinned" in p.message for p in problems)


def test_missing_listed_file_is_reported(bundle: Path) -> None:
    write_manifest(bundle, files=["model.onnx", "weights/missing.bin"])
    _, problems = inspect_bundle(bundle)
    assert [str(p) for p in problems] == ["files[1]: 'weights/missing.bin' is listed but not in the bundle"]


def test_metrics_file_must_agree_with_the_manifest(bundle: Path) -> None:
    write_manifest(bundle, metrics={"auc": 0.5})
    _, problems = inspect_bundle(bundle)
    assert [p.path for p in problems] == ["metrics.auc"]


def test_metrics_file_is_merged(bundle: Path) -> None:
    write_manifest(bundle, metrics={"latency_ms": 3})
    loaded = load_bundle(bundle)
    assert loaded.manifest.metrics["latency_ms"] == 3
    assert loaded.manifest.metrics["auc"] == 0.8683


@pytest.mark.parametrize("bad", ["NaN", "true", '"0.9"'])
def test_metric_values_must_be_finite_numbers(bundle: Path, bad: str) -> None:
    (bundle / "metrics.json").write_text(f'{{"auc": {bad}}}')
    _, problems = inspect_bundle(bundle)
    # NaN is not JSON at all: refused while parsing, before any field is looked at.
    assert [p.path for p in problems] == ["metrics.json" if bad == "NaN" else "metrics.json.auc"]


def test_extensions_hold_free_form_data(bundle: Path) -> None:
    write_manifest(bundle, extensions={"team": {"cost_center": 42}})
    assert load_bundle(bundle).manifest.extensions == {"team": {"cost_center": 42}}


def test_invalid_json_and_missing_manifest(tmp_path: Path, bundle: Path) -> None:
    (bundle / "manifest.json").write_text("{nope")
    _, problems = inspect_bundle(bundle)
    assert problems[0].path == "manifest.json" and "line 1" in problems[0].message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleInvalidError, match="missing"):
        load_bundle(empty)


def test_hidden_files_and_ignore_patterns_are_not_packed(bundle: Path) -> None:
    (bundle / ".secret").write_text("x")
    (bundle / "__pycache__").mkdir()
    (bundle / "__pycache__" / "x.pyc").write_text("x")
    (bundle / "scratch.log").write_text("x")
    (bundle / ".mlociignore").write_text("# comment\n*.log\n")
    paths = [f.path for f in load_bundle(bundle).files]
    assert ".secret" not in paths and "scratch.log" not in paths and "__pycache__/x.pyc" not in paths


def test_symlinked_directories_are_refused(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (bundle / "linked").symlink_to(tmp_path / "elsewhere")
    _, problems = inspect_bundle(bundle)
    assert [p.path for p in problems] == ["linked"]


def test_validate_cli_exit_codes(mloci: Runner, bundle: Path) -> None:
    ok = mloci("validate", bundle)
    assert ok.exit_code == 0 and "valid" in ok.stdout
    write_manifest(bundle, version="one", name="Bad Name")
    bad = mloci("validate", bundle, "--json")
    assert bad.exit_code == 3
    report = json.loads(bad.stdout)
    assert report["valid"] is False
    assert {p["path"] for p in report["problems"]} == {"version", "name"}
    text = mloci("validate", bundle)
    assert text.exit_code == 3 and "version:" in text.stderr and "Traceback" not in text.stderr


def test_init_writes_a_valid_starter_manifest(mloci: Runner, tmp_path: Path) -> None:
    bundle = tmp_path / "My Model"
    bundle.mkdir()
    (bundle / "weights.safetensors").write_bytes(b"\0" * 16)
    assert guess_framework(bundle) == "safetensors"
    result = mloci("init", bundle)
    assert result.exit_code == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest == {"framework": "safetensors", "name": "my-model", "version": "0.1.0"}
    assert mloci("validate", bundle).exit_code == 0
    again = mloci("init", bundle)
    assert again.exit_code == 7 and "already exists" in again.stderr


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("model.onnx", "weight"),
        ("weights/model-00001.safetensors", "weight"),
        ("config.json", "weight.config"),
        ("tokenizer.json", "weight.config"),
        ("README.md", "doc"),
        ("LICENSE", "doc"),
        ("manifest.json", "doc"),
        ("serve.py", "code"),
        ("requirements.txt", "code"),
        ("data/eval.parquet", "dataset"),
        ("unknown.blob", "weight"),
    ],
)
def test_layer_kinds(path: str, kind: str) -> None:
    assert layer_kind(path) == kind


def test_committed_schemas_match_the_models() -> None:
    """schemas/ is generated from the pydantic models: regenerate with `python -m mloci.schemas`."""
    for filename, schema in schemas.generate().items():
        committed = (REPO_ROOT / "schemas" / filename).read_text()
        assert committed == schemas.render(schema), f"schemas/{filename} drifted; run python -m mloci.schemas"


def test_generated_schema_accepts_the_example_and_rejects_typos() -> None:
    schema = json.loads((REPO_ROOT / "schemas" / "bundle-manifest.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    document = json.loads((EXAMPLE / "manifest.json").read_text())
    validator.validate(document)
    document["framwork"] = "x"
    assert not validator.is_valid(document)
