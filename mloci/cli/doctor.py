from __future__ import annotations

from typing import Any

import click

from mloci.cli._output import emit_json, printable
from mloci.cli.options import json_option, registry_options, session_from, upload_options
from mloci.ops.doctor import doctor

_MARKS = {True: "yes", False: "no ", None: " ? "}


@click.command("doctor")
@click.argument("registry")
@click.option(
    "--repository", default="mloci-doctor", show_default=True, help="Scratch repository for write probes."
)
@registry_options
@upload_options
@json_option
def doctor_command(registry: str, repository: str, as_json: bool, **kw: Any) -> None:
    """Probe what REGISTRY supports: auth, chunked uploads, OCI 1.1 artifacts, referrers, mounts, deletes.

    Write probes push a few bytes to a scratch repository and delete them again when the
    registry allows deletes.
    """
    report = doctor(registry, repository=repository, session=session_from(kw))
    if as_json:
        emit_json(report.to_json())
        return
    width = max(len(f.name) for f in report.findings)
    for finding in report.findings:
        click.echo(printable(f"{_MARKS[finding.supported]}  {finding.name:<{width}}  {finding.detail}"))
