"""``mloci wheel``: Python distributions as OCI artifacts, one release per project version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mloci.cli._output import emit_json, human_size, listener
from mloci.cli.options import json_option, quiet_option, registry_options, session_from
from mloci.ops.wheel import pull_release, push_distributions, yank


@click.group("wheel")
def wheel_group() -> None:
    """Wheels and sdists in the registry: one repository per project, one artifact per version."""


@wheel_group.command("push")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.argument("namespace")
@registry_options
@json_option
@quiet_option
def push_command(files: tuple[Path, ...], namespace: str, as_json: bool, quiet: bool, **kw: Any) -> None:
    """Publish wheel and sdist FILES under NAMESPACE (e.g. registry.example.com/py).

    Each project goes to NAMESPACE/<normalized name>, each version to one artifact tagged with
    it. A version gains new files; a file name already published with other content is refused
    (exit 7), the same content again is a no-op.
    """
    results = push_distributions(
        list(files),
        namespace,
        session=session_from(kw),
        listener=listener("pushing", quiet=quiet or as_json),
    )
    if as_json:
        emit_json({"releases": [r.to_json() for r in results]})
        return
    for result in results:
        if not quiet:
            if result.unchanged:
                click.echo(f"unchanged: {result.project} {result.version} already has these files", err=True)
            else:
                click.echo(
                    f"{result.project} {result.version}: added {', '.join(result.added)} "
                    f"({human_size(result.bytes_uploaded)} uploaded)",
                    err=True,
                )
        click.echo(str(result.reference))


@wheel_group.command("pull")
@click.argument("spec", metavar="REFERENCE")
@click.option(
    "-d",
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Directory to write the files into.",
)
@click.option(
    "--filter", "filters", multiple=True, help="Only files matching this glob, e.g. '*.whl' (repeatable)."
)
@click.option("--pre", is_flag=True, help="Let the latest version be a pre-release.")
@registry_options
@json_option
def pull_command(
    spec: str, dest: Path, filters: tuple[str, ...], pre: bool, as_json: bool, **kw: Any
) -> None:
    """Download a release's files, verified, into a directory.

    REFERENCE is REGISTRY/NAMESPACE/PROJECT[==VERSION]. Without a version the highest one that is not yanked is taken (final releases first).
    """
    result = pull_release(spec, dest, filters=filters, pre=pre, session=session_from(kw))
    if as_json:
        emit_json(result.to_json())
        return
    if result.yanked is not None:
        click.echo(
            f"warning: this release is yanked{': ' + result.yanked if result.yanked else ''}", err=True
        )
    for path in result.files:
        click.echo(str(path))
    if result.skipped:
        click.echo(f"unchanged: {len(result.skipped)} files already there", err=True)


@wheel_group.command("yank")
@click.argument("spec", metavar="REFERENCE")
@click.option("--reason", default="", help="Why, shown to users by pip and uv.")
@click.option("--undo", is_flag=True, help="Un-yank the release.")
@registry_options
@json_option
def yank_command(spec: str, reason: str, undo: bool, as_json: bool, **kw: Any) -> None:
    """Yank a release (PEP 592): installers skip it unless pinned with ==. Files stay downloadable.

    REFERENCE is REGISTRY/NAMESPACE/PROJECT==VERSION. The release manifest changes (its digest
    too): sign it again if it was signed.
    """
    result = yank(spec, reason=reason, undo=undo, session=session_from(kw))
    if as_json:
        emit_json(result.to_json())
        return
    if result.unchanged:
        click.echo(f"unchanged: already {'yanked' if result.yanked else 'not yanked'}", err=True)
    click.echo(str(result.reference))
