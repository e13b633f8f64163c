from __future__ import annotations

from pathlib import Path

import click

from mloci.bundle.load import inspect_bundle
from mloci.cli._output import emit_json, error_json
from mloci.cli.options import json_option
from mloci.errors import BundleInvalidError


@click.command("validate")
@click.argument("bundle", type=click.Path(path_type=Path))
@json_option
def validate_command(bundle: Path, as_json: bool) -> None:
    """Check BUNDLE's manifest (schema and semantics) and files; report every problem at once.

    Exits 0 when the bundle is valid and 3 when it is not, so CI can gate on it.
    """
    result, problems = inspect_bundle(bundle)
    invalid = f"{bundle} is not a valid bundle"
    if as_json:
        emit_json(
            {
                "bundle": str(bundle),
                "valid": result is not None,
                "problems": [{"path": p.path, "message": p.message} for p in problems],
                "files": [f.path for f in result.files] if result else [],
                # The same "error" object every command prints with --json when it fails.
                **(error_json(invalid, None, 3) if result is None else {}),
            }
        )
        if result is None:
            click.echo(f"mloci: error: {invalid}", err=True)
    elif result is not None:
        m = result.manifest
        click.echo(f"{bundle}: valid — {m.name} {m.version}, {len(result.files)} files")
    else:
        for problem in problems:
            click.echo(f"{bundle}: {problem}", err=True)
    if result is None:
        raise click.exceptions.Exit(BundleInvalidError.exit_code)
