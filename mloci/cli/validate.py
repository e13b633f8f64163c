from __future__ import annotations

from pathlib import Path

import click

from mloci.cli._output import emit_json, error_json, printable
from mloci.cli.options import json_option
from mloci.errors import BundleInvalidError
from mloci.ops.validate import validate


@click.command("validate")
@click.argument("bundle", type=click.Path(path_type=Path))
@json_option
def validate_command(bundle: Path, as_json: bool) -> None:
    """Check BUNDLE's manifest (schema and semantics) and files; report every problem at once.

    Exits 0 when the bundle is valid and 3 when it is not, so CI can gate on it.
    """
    report = validate(bundle)
    invalid = f"{bundle} is not a valid bundle"
    if as_json:
        # When invalid, the same "error" object every command prints with --json when it fails.
        emit_json({**report.to_json(), **(error_json(invalid, None, 3) if not report.valid else {})})
        if not report.valid:
            click.echo(printable(f"mloci: error: {invalid}"), err=True)
    elif report.manifest is not None:
        m = report.manifest
        click.echo(printable(f"{bundle}: valid — {m.name} {m.version}, {len(report.files)} files"))
    else:
        for problem in report.problems:
            click.echo(printable(f"{bundle}: {problem}"), err=True)
    if not as_json:
        for warning in report.warnings:
            click.echo(printable(f"{bundle}: warning: {warning}"), err=True)
    if not report.valid:
        raise click.exceptions.Exit(BundleInvalidError.exit_code)
