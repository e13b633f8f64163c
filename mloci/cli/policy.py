from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mloci.cli._output import emit_json, error_json, printable
from mloci.cli.options import json_option, registry_options, session_from
from mloci.errors import PolicyError
from mloci.ops.policy import check
from mloci.ops.refs import parse_reference


@click.group("policy")
def policy_group() -> None:
    """Evaluate policies (signatures, attachments, metric thresholds, fields, licenses, age)."""


@policy_group.command("check")
@click.argument("reference")
@click.option(
    "--policy", "policy_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@registry_options
@json_option
def check_command(reference: str, policy_file: Path, as_json: bool, **kw: Any) -> None:
    """Explain every rule of the policy for REFERENCE; exit 11 when any rule fails."""
    report = check(policy_file, parse_reference(reference), session=session_from(kw))
    failed = sum(not result.passed for result in report.results)
    refused = f"{reference} fails {failed} policy rule{'s' if failed != 1 else ''} of {policy_file}"
    if as_json:
        # A refusal carries the same "error" object every command prints with --json when it fails.
        error = error_json(refused, None, PolicyError.exit_code) if not report.passed else {}
        emit_json({**report.to_json(), **error})
    else:
        for result in report.results:
            click.echo(printable(f"{'pass' if result.passed else 'FAIL'}  {result.rule}: {result.detail}"))
    if not report.passed:
        click.echo(printable(f"mloci: error: {refused}"), err=True)
        raise click.exceptions.Exit(PolicyError.exit_code)
