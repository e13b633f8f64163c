"""CLI conventions every command keeps: --json errors, examples in --help, options only where they apply.

The command tree is walked, so a new command is checked without anyone listing it here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from helpers import Runner

from mloci.cli.app import cli

BAD_REFERENCE = "Not A Reference!"


def _commands() -> Iterator[tuple[str, click.Command]]:
    def walk(group: click.Group, prefix: str, ctx: click.Context) -> Iterator[tuple[str, click.Command]]:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            path = f"{prefix} {name}".strip()
            yield path, command
            if isinstance(command, click.Group):
                yield from walk(command, path, ctx)

    with click.Context(cli) as ctx:
        yield from walk(cli, "", ctx)


COMMANDS = dict(_commands())
JSON_COMMANDS = sorted(p for p, c in COMMANDS.items() if any(o.name == "as_json" for o in c.params))


def _failing_args(path: str, command: click.Command, tmp_path: Path) -> list[str]:
    """Arguments that make ``command`` fail: bad references, missing files, required options filled in."""
    special = {
        "keygen": ["--output-key-prefix", str(tmp_path / "missing-dir" / "key")],
        "init": [str(tmp_path / "bundle"), "--version", "not-a-version"],
        "validate": [str(tmp_path / "missing")],
        "push": [str(tmp_path)],  # a directory without manifest.json
        "fsck": ["--repair-from", "not a registry"],
    }
    if path in special:
        return special[path]
    args: list[str] = []
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    for param in command.params:
        if isinstance(param, click.Argument):
            value = str(existing) if isinstance(param.type, click.Path) else BAD_REFERENCE
            args += [value] * (2 if param.nargs == -1 else 1)
        elif isinstance(param, click.Option) and param.required:
            if isinstance(param.type, click.Path):
                value = str(existing)
            elif isinstance(param.type, click.types.IntParamType):
                value = "1"
            else:
                value = "x"
            args += [param.opts[-1], value]
    if path == "wheel push":  # FILES... NAMESPACE: the namespace is the bad reference
        args = [str(existing), BAD_REFERENCE]
    return args


def test_the_tree_is_walked() -> None:
    assert {"push", "pull", "wheel pull", "index serve", "policy check"} <= set(COMMANDS)
    assert len(JSON_COMMANDS) >= 25


def test_every_command_takes_json_but_the_server() -> None:
    leaves = {p for p, c in COMMANDS.items() if not isinstance(c, click.Group)}
    assert leaves - set(JSON_COMMANDS) == {"index serve", "serve"}  # long-running servers print logs


@pytest.mark.parametrize("path", JSON_COMMANDS)
def test_every_json_command_prints_its_error_as_one_json_object(
    mloci: Runner, path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "not used")
    monkeypatch.chdir(tmp_path)
    result = mloci(*path.split(), *_failing_args(path, COMMANDS[path], tmp_path), "--json")
    assert result.exit_code not in (0, 1), (result.stdout, result.stderr)
    assert "internal error" not in result.stderr
    value = json.loads(result.stdout)  # exactly one JSON document, nothing else on stdout
    error = value["error"]
    assert set(error) >= {"message", "hint", "exitCode"}
    assert error["exitCode"] == result.exit_code
    assert isinstance(error["message"], str) and error["message"]
    assert error["message"] in result.stderr  # the same error, as one line on stderr too


def test_json_error_carries_the_hint(mloci: Runner, tmp_path: Path) -> None:
    result = mloci("pull", "churn-model", "-o", tmp_path / "out", "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["message"] == "churn-model names no tag or digest"
    assert "mloci ls" in error["hint"]


def test_without_json_errors_leave_stdout_empty(mloci: Runner) -> None:
    result = mloci("inspect", BAD_REFERENCE)
    assert result.exit_code == 2 and result.stdout == ""


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_help_shows_examples(mloci: Runner, path: str) -> None:
    result = mloci(*path.split(), "--help")
    assert result.exit_code == 0
    examples = result.stdout.partition("Examples:")[2]
    assert f"mloci {path}" in examples, result.stdout


def test_the_top_level_help_shows_examples(mloci: Runner) -> None:
    assert "$ mloci push" in mloci("--help").stdout.partition("Examples:")[2]


UPLOAD_ONLY = ("--chunk-size",)
TRANSFER = ("--concurrency",)


@pytest.mark.parametrize("path", ["inspect", "verify", "history", "ls", "diff", "tag", "gc", "discover"])
def test_commands_that_move_no_blobs_do_not_offer_transfer_options(mloci: Runner, path: str) -> None:
    text = mloci(*path.split(), "--help").stdout
    for option in (*UPLOAD_ONLY, *TRANSFER):
        assert option not in text, (path, option)
    assert "--plain-http" in text  # they still reach registries


@pytest.mark.parametrize("path", ["push", "copy", "promote", "wheel push", "image build"])
def test_upload_commands_offer_upload_options(mloci: Runner, path: str) -> None:
    text = mloci(*path.split(), "--help").stdout
    assert "--chunk-size" in text and "--concurrency" in text


@pytest.mark.parametrize("path", ["pull", "wheel pull"])
def test_download_commands_take_output_and_dest_and_document_output(
    mloci: Runner, path: str, tmp_path: Path
) -> None:
    text = mloci(*path.split(), "--help").stdout
    assert "-o, --output DIRECTORY" in text and "--dest" not in text
    assert "--concurrency" in text and "--chunk-size" not in text
    for flag in ("-o", "--output", "-d", "--dest"):
        # Parsed (the reference is what fails), not "no such option".
        result = mloci(*path.split(), BAD_REFERENCE, flag, tmp_path / "out")
        assert result.exit_code != 0 and "No such option" not in result.stderr, (flag, result.stderr)


def test_init_hint_is_quoted_for_copy_paste(
    mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "My Model").mkdir()
    result = mloci("init", "My Model", "--name", "my-model")
    assert result.exit_code == 0, result.stderr
    assert "mloci validate 'My Model'" in result.stdout + result.stderr


def test_ls_has_a_header_and_no_1970(mloci: Runner, tmp_path: Path) -> None:
    bundle = tmp_path / "tiny"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"name": "tiny", "version": "1.0.0"}')
    (bundle / "weights.bin").write_bytes(b"\0" * 10)
    assert mloci("push", bundle).exit_code == 0
    lines = mloci("ls", "tiny").stdout.splitlines()
    assert lines[0].split()[:2] == ["VERSION", "GIT"] and "CREATED" in lines[0]
    assert lines[1].startswith("1.0.0") and "1970" not in lines[1]
    assert mloci("ls", "tiny", "--json").stdout.count('"created": null') == 1
