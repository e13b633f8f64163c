"""Bad bundle input gets one clear problem each: links out of the bundle, checksum files, malformed
manifest.json, unhelpful messages, unsafe file names (issue 10)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import unicodedata
from pathlib import Path

import pytest
from helpers import Runner

from mloci.bundle import inspect_bundle, load_bundle
from mloci.bundle.digests import MIN_CACHED_SIZE
from mloci.cli._output import _Bars, printable
from mloci.errors import BundleInvalidError, IntegrityError, UsageError
from mloci.ops.pull import safe_path
from mloci.store import open_store
from mloci.store.registry.transport import _oci_errors
from mloci.types import Reference, mediatype


def messages(bundle: Path) -> list[str]:
    result, problems = inspect_bundle(bundle)
    assert result is None, "the bundle should be invalid"
    return [str(p) for p in problems]


# --- links ---------------------------------------------------------------------------------------


def test_symlinked_file_outside_the_bundle_is_refused(bundle: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_text("do not upload")
    (bundle / "weights.bin").symlink_to(secret)
    problems = messages(bundle)
    assert problems == [
        "weights.bin: symlink pointing outside the bundle; links are packed only when they stay "
        "inside it (copy the file in instead)"
    ]
    with pytest.raises(BundleInvalidError, match="outside the bundle"):
        load_bundle(bundle)


def test_relative_link_climbing_out_and_dangling_links_are_refused(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("x")
    (bundle / "up.txt").symlink_to("../outside.txt")
    (bundle / "gone.txt").symlink_to("nowhere.txt")
    problems = messages(bundle)
    assert any(p.startswith("up.txt: symlink pointing outside") for p in problems)
    assert any(p.startswith("gone.txt: broken symlink") for p in problems)


def test_link_to_a_hidden_file_inside_the_bundle_is_refused(bundle: Path) -> None:
    (bundle / ".env").write_text("TOKEN=x")
    (bundle / "env.txt").symlink_to(".env")
    assert messages(bundle) == ["env.txt: symlink to '.env', which is hidden or ignored and so is not packed"]


def test_symlinked_file_inside_the_bundle_is_packed_as_that_file(bundle: Path) -> None:
    (bundle / "alias.onnx").symlink_to("model.onnx")
    files = {f.path: f for f in load_bundle(bundle).files}
    assert files["alias.onnx"].source == (bundle / "model.onnx").resolve()
    assert files["alias.onnx"].size == (bundle / "model.onnx").stat().st_size


def test_a_bundle_reached_through_a_symlink_keeps_its_inside_links(bundle: Path, tmp_path: Path) -> None:
    (bundle / "alias.onnx").symlink_to(bundle / "model.onnx")
    via = tmp_path / "via"
    via.symlink_to(bundle)
    assert "alias.onnx" in {f.path for f in load_bundle(via).files}


# --- sha256.txt / SHA256SUMS ---------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_matching_sha256_txt_in_every_sha256sum_form_is_accepted(bundle: Path) -> None:
    model, train = sha256(bundle / "model.onnx"), sha256(bundle / "train.py")
    (bundle / "sha256.txt").write_text(f"{model}  model.onnx\n{train.upper()} *./train.py\r\n\n")
    (bundle / "SHA256SUMS").write_text(f"SHA256 (model.onnx) = {model}\n")
    assert "sha256.txt" in {f.path for f in load_bundle(bundle).files}


def test_stale_sha256_txt_is_refused_naming_the_file(bundle: Path, mloci: Runner) -> None:
    (bundle / "sha256.txt").write_text(f"{sha256(bundle / 'model.onnx')}  model.onnx\n")
    with (bundle / "model.onnx").open("ab") as handle:
        handle.write(b"retrained")
    problems = messages(bundle)
    assert len(problems) == 1 and problems[0].startswith(
        "sha256.txt:1: 'model.onnx' does not match its checksum"
    )
    result = mloci("validate", bundle)
    assert result.exit_code == 3 and "'model.onnx' does not match" in result.stderr


def test_sha256sums_naming_a_missing_file_or_malformed_line_is_refused(bundle: Path) -> None:
    (bundle / "SHA256SUMS").write_text(f"{'0' * 64}  ./gone.onnx\nnot a checksum line\n")
    problems = messages(bundle)
    assert len(problems) == 2
    assert any(p.startswith("SHA256SUMS:1: 'gone.onnx' is listed but not in the bundle") for p in problems)
    assert any(p.startswith("SHA256SUMS:2: not a sha256sum line") for p in problems)


# --- manifest.json parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"null", "manifest.json: must be a JSON object {...}, not null"),
        (b"[1, 2]", "manifest.json: must be a JSON object {...}, not an array"),
        (b"[" * 100_000, "manifest.json: nested more than 64 levels deep"),
        (
            b'{"name": "a", "name": "b", "version": "1.0.0"}',
            "manifest.json: duplicate key 'name'; keep one (which value wins would be a guess)",
        ),
        (
            b'\xef\xbb\xbf{"name": "a", "version": "1.0.0"}',
            "manifest.json: starts with a UTF-8 byte-order mark; remove it (save as UTF-8 without BOM)",
        ),
        (b'{"name": "\xff"}', "manifest.json: not UTF-8 text (invalid byte at offset 10); save it as UTF-8"),
        (b'{"name": "a", "version": "1.0.0", "metrics": {"x": NaN}}', "NaN is not a JSON number"),
    ],
)
def test_malformed_manifest_json_gets_one_clear_problem(
    bundle: Path, mloci: Runner, content: bytes, expected: str
) -> None:
    (bundle / "manifest.json").write_bytes(content)
    problems = messages(bundle)
    assert len(problems) == 1 and expected in problems[0]
    result = mloci("validate", bundle, "--json")
    assert result.exit_code == 3 and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["problems"], "--json must name the problem"


def test_duplicate_keys_in_metrics_json_are_refused(bundle: Path) -> None:
    (bundle / "metrics.json").write_text('{"auc": 0.9, "auc": 0.1}')
    assert messages(bundle) == [
        "metrics.json: duplicate key 'auc'; keep one (which value wins would be a guess)"
    ]


def test_manifest_json_that_is_a_directory_is_not_called_missing(bundle: Path) -> None:
    (bundle / "manifest.json").unlink()
    (bundle / "manifest.json").mkdir()
    assert "manifest.json: is a directory; it must be a JSON file" in messages(bundle)


def test_validate_of_a_missing_directory_names_the_path_once(mloci: Runner, tmp_path: Path) -> None:
    result = mloci("validate", tmp_path / "nonexistent")
    assert result.exit_code == 3
    assert result.stderr.strip() == f"{tmp_path / 'nonexistent'}: no such directory"


def test_file_name_that_is_not_utf8_is_refused(bundle: Path, mloci: Runner) -> None:
    Path(os.fsdecode(os.fsencode(bundle) + b"/w\xffeights.bin")).write_bytes(b"x")
    assert messages(bundle) == [
        "w\\xffeights.bin: file name is not valid UTF-8; rename it (artifact paths are UTF-8)"
    ]
    result = mloci("validate", bundle)
    assert result.exit_code == 3 and "internal error" not in result.stderr


# --- messages that help --------------------------------------------------------------------------


def test_bad_name_says_what_is_allowed_with_an_example(bundle: Path) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    data["name"] = "Churn Model"
    (bundle / "manifest.json").write_text(json.dumps(data))
    (problem,) = messages(bundle)
    assert problem == (
        "name: must be lowercase letters and digits, separated by single '.', '_' or '-' "
        "(no spaces or capitals); try 'churn-model'"
    )
    assert "^[a-z0-9]" not in problem


def test_string_metric_is_one_line(bundle: Path) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    data["metrics"] = {"accuracy": "high"}
    (bundle / "manifest.json").write_text(json.dumps(data))
    assert messages(bundle) == ["metrics.accuracy: must be a number, not the string 'high'"]


def test_unknown_key_suggests_the_close_field(bundle: Path) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    data["framwork"] = data.pop("framework")
    data["runtime"] = {"acelerator": "none"}
    (bundle / "manifest.json").write_text(json.dumps(data))
    assert sorted(messages(bundle)) == [
        "framwork: unknown field; did you mean 'framework'? (free-form data belongs under 'extensions')",
        "runtime.acelerator: unknown field; did you mean 'accelerator'? (free-form data belongs under "
        "'extensions')",
    ]


def test_repository_name_over_255_characters_is_called_too_long() -> None:
    with pytest.raises(UsageError) as info:
        Reference.parse("a" * 300 + ":1")
    assert "300 characters long" in str(info.value) and "at most 255" in str(info.value)


# --- file names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["new\nline.bin", "esc\x1b[31m.bin", "tab\t.bin", "csi\x9b.bin"])
def test_control_characters_in_file_names_are_refused_when_packing(bundle: Path, name: str) -> None:
    (bundle / name).write_bytes(b"x")
    (problem,) = messages(bundle)
    assert "control character" in problem and "\x1b" not in problem and "\n" not in problem


@pytest.mark.parametrize("name", ["new\nline.bin", "dir/esc\x1b[2J.bin", "del\x7f", "c1\x85"])
def test_control_characters_in_artifact_paths_are_refused_when_pulling(name: str) -> None:
    with pytest.raises(IntegrityError, match="unsafe file path"):
        safe_path(name)


def test_names_equal_after_nfc_normalization_are_refused(bundle: Path) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "modèle.bin"), unicodedata.normalize("NFD", "modèle.bin")
    assert nfc != nfd
    (bundle / nfc).write_bytes(b"a")
    (bundle / nfd).write_bytes(b"b")
    (problem,) = messages(bundle)
    assert "only in Unicode normalization (NFC/NFD)" in problem


def test_mlociignore_that_is_not_utf8_is_a_problem_not_a_crash(bundle: Path) -> None:
    (bundle / ".mlociignore").write_bytes(b"*.log\n\xff\n")
    assert messages(bundle) == [".mlociignore: not UTF-8 text"]


# --- JSON from outside nested too deeply ---------------------------------------------------------


def test_deeply_nested_json_in_the_local_store_is_malformed_not_a_crash(mloci: Runner) -> None:
    ref = Reference(None, "deep", tag="1")
    open_store(ref).push_manifest(ref, b"[" * 100_000, mediatype.OCI_MANIFEST)  # was RecursionError
    for args in (("ls", "deep"), ("gc", "deep", "--keep-last", "1", "--dry-run"), ("inspect", "deep:1")):
        result = mloci(*args)
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_deeply_nested_registry_error_bodies_are_malformed_not_a_crash() -> None:
    assert _oci_errors(b"[" * 100_000) == ([], "")  # was RecursionError


def test_progress_bar_labels_are_text_not_rich_markup(capsys: pytest.CaptureFixture[str]) -> None:
    """A remote file path such as '[link=…]' must not become a hyperlink (or any markup) in the bars."""
    bars = _Bars("pulling")
    bars.begin(1, 1)
    bars.started("k", "[link=https://evil.example]model.onnx[/link]", 1)
    bars.end()
    assert "[link=https://evil.example]model.onnx[/link]" in capsys.readouterr().err


def test_printable_escapes_controls_bidi_and_undecodable_bytes() -> None:
    assert printable("a\x1b[2Jb\nc\x9b\u202e\udcff") == "a\\x1b[2Jb\\x0ac\\x9b\\u202e\\xff"
    assert printable("modèle — ok") == "modèle — ok"


def test_validate_remembers_checksummed_digests_so_a_repeat_reads_nothing(
    bundle: Path, mloci_home: Path
) -> None:
    big = bundle / "weights.bin"
    big.write_bytes(os.urandom(MIN_CACHED_SIZE + 1))
    (bundle / "sha256.txt").write_text(f"{sha256(big)}  weights.bin\n")
    load_bundle(bundle)
    db = sqlite3.connect(mloci_home / "cache" / "digests.sqlite")
    try:
        assert db.execute("SELECT digest FROM digests").fetchall() == [(f"sha256:{sha256(big)}",)]
    finally:
        db.close()
