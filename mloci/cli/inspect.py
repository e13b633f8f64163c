from __future__ import annotations

from typing import Any

import click

from mloci.cli._output import emit_json, human_size
from mloci.cli.contract import contract_lines
from mloci.cli.options import json_option, registry_options, store_options
from mloci.ops.inspection import inspect
from mloci.ops.refs import parse_reference


@click.command("inspect")
@click.argument("reference")
@registry_options
@json_option
def inspect_command(reference: str, as_json: bool, **kw: Any) -> None:
    """Show an artifact's manifest, annotations, metrics and files, without downloading weights."""
    result = inspect(parse_reference(reference), options=store_options(kw))
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(f"Reference:  {result.reference}")
    click.echo(f"Type:       {result.manifest.get('artifactType') or result.media_type}")
    for key, value in sorted(result.annotations.items()):
        click.echo(f"  {key}: {value}")
    if result.metrics:
        click.echo("Metrics:")
        for key, value in sorted(result.metrics.items()):
            click.echo(f"  {key}: {value}")
    for line in contract_lines(result.bundle):
        click.echo(line)
    if result.files:
        click.echo(f"Files ({human_size(sum(f['size'] for f in result.files))}):")
        width = max(len(f["path"] or "-") for f in result.files)
        for f in result.files:
            click.echo(
                f"  {f['path'] or '-':<{width}}  {f['kind']:<13} {human_size(f['size']):>10}  {f['digest'][:19]}"
            )
