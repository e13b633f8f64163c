from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mloci.cli._output import emit_json, printable
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
    if as_json:
        emit_json(report.to_json())
    else:
        for result in report.results:
            click.echo(printable(f"{'pass' if result.passed else 'FAIL'}  {result.rule}: {result.detail}"))
    if not report.passed:
        raise click.exceptions.Exit(PolicyError.exit_code)
