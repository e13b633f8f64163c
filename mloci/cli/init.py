from __future__ import annotations

import shlex
from pathlib import Path

import click

from mloci.bundle.init import init_bundle
from mloci.cli._output import emit_json
from mloci.cli.options import json_option


@click.command("init")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Model name (default: the directory name).")
@click.option("--version", "version", default="0.1.0", show_default=True, help="SemVer version.")
@click.option("--force", is_flag=True, help="Overwrite an existing manifest.json.")
@json_option
def init_command(bundle: Path, name: str | None, version: str, force: bool, as_json: bool) -> None:
    """Write a starter manifest.json into BUNDLE, guessing the framework from its files."""
    path = init_bundle(bundle, name=name, version=version, force=force)
    if as_json:
        emit_json({"manifest": str(path)})
    else:
        command = f"mloci validate {shlex.quote(str(bundle))}"
        click.echo(f"wrote {path}; fill in metrics, git_sha, license… then run: {command}")
