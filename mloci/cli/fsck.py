"""``mloci fsck``: verify (and repair) the local store."""

from __future__ import annotations

from typing import Any

import click

from mloci.cli._output import emit_json, error_json, human_size
from mloci.cli.options import json_option, registry_options, session_from
from mloci.errors import IntegrityError
from mloci.ops.fsck import fsck


@click.command("fsck")
@click.option(
    "--repair-from",
    metavar="REGISTRY[/NAMESPACE]",
    help="Fetch damaged or missing blobs from REGISTRY/NAMESPACE/<repository>, verified, and replace them.",
)
@registry_options
@json_option
def fsck_command(repair_from: str | None, as_json: bool, **kw: Any) -> int:
    """Verify every blob of the local store against its digest; report, and repair from a registry.

    Each blob is hashed as it streams (flat memory). Exit 0 when the store is intact or was
    fully repaired, 6 when damage remains: repair it with --repair-from, or push the
    bundles named in the report again ('mloci push' replaces damaged blobs).

    \b
    Examples:
      mloci fsck
      mloci fsck --repair-from registry.example.com/ml --json
    """
    report = fsck(repair_from=repair_from, session=session_from(kw))
    failure: IntegrityError | None = None
    if report.remaining:
        failure = IntegrityError(
            f"{len(report.remaining)} blobs of the local store are damaged or missing",
            hint="repair with 'mloci fsck --repair-from REGISTRY[/NAMESPACE]', or push the bundles named above again",
        )
    elif report.broken_tags:
        failure = IntegrityError(
            f"{len(report.broken_tags)} tags of the local store name a blob, not a manifest",
            hint="point each at a manifest again: mloci tag REPOSITORY@DIGEST TAG",
        )
    if as_json:
        # One object: the report, and (like every command's --json error) an "error" member when it failed.
        error = error_json(failure.message, failure.hint, failure.exit_code) if failure else {}
        emit_json({**report.to_json(), **error})
        if failure is None:
            return 0
        click.echo(f"mloci: error: {failure}", err=True)
        return failure.exit_code
    for problem in report.problems:
        users = ", ".join(problem.used_by) or "no artifact"
        state = (
            f"repaired from {problem.repaired_from}"
            if problem.repaired_from
            else f"NOT repaired: {problem.repair_error}"
            if problem.repair_error
            else "not repaired"
        )
        click.echo(f"{problem.kind} {problem.digest} ({problem.path}), used by {users}: {state}")
    for line in report.broken_tags:
        click.echo(f"broken tag: {line}")
    click.echo(
        f"checked {report.blobs_checked} blobs ({human_size(report.bytes_checked)}) in the {report.store}: "
        + (
            "intact"
            if report.intact
            else f"{len(report.remaining)} damaged or missing blobs, {len(report.broken_tags)} broken tags"
        ),
        err=True,
    )
    if failure is not None:
        raise failure
    return 0
