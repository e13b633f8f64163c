from __future__ import annotations

from typing import Any

import click

from mloci.cli._output import emit_json, human_size, printable
from mloci.cli.contract import contract_lines
from mloci.cli.options import json_option, registry_options, session_from
from mloci.ops.inspection import inspect
from mloci.ops.refs import parse_reference


@click.command("inspect")
@click.argument("reference")
@registry_options
@json_option
def inspect_command(reference: str, as_json: bool, **kw: Any) -> None:
    """Show an artifact's manifest, annotations, metrics and files, without downloading weights."""
    result = inspect(parse_reference(reference), session=session_from(kw))
    if as_json:
        emit_json(result.to_json())
        return
    # Everything below came from the registry: printable() keeps its bytes off the terminal.
    click.echo(f"Reference:  {result.reference}")
    click.echo(printable(f"Type:       {result.artifact_type or result.media_type}"))
    for key, value in sorted(result.annotations.items()):
        click.echo(printable(f"  {key}: {value}"))
    if result.metrics:
        click.echo("Metrics:")
        for name, number in sorted(result.metrics.items()):
            click.echo(printable(f"  {name}: {number:g}"))
    for line in contract_lines(result.bundle):
        click.echo(line)
    if result.files:
        click.echo(f"Files ({human_size(result.size)}):")
        paths = [printable(f.path or "-") for f in result.files]
        width = max(len(p) for p in paths)
        for f, path in zip(result.files, paths, strict=True):
            click.echo(
                printable(f"  {path:<{width}}  {f.kind:<13} {human_size(f.size):>10}  {str(f.digest)[:19]}")
            )
