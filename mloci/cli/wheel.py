"""``mloci wheel``: Python distributions as OCI artifacts, one release per project version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mloci.cli._output import emit_json, human_size, listener
from mloci.cli.options import (
    download_options,
    json_option,
    output_dir_option,
    quiet_option,
    registry_options,
    session_from,
    upload_options,
)
from mloci.ops.gittag import create_tags, plan_tags
from mloci.ops.wheel import pull_release, push_distributions, yank
from mloci.python.filenames import parse_filename


@click.group("wheel")
def wheel_group() -> None:
    """Wheels and sdists in the registry: one repository per project, one artifact per version."""


@wheel_group.command("push")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.argument("namespace")
@click.option(
    "--git-tag",
    "git_tag",
    is_flag=True,
    help="After the push, tag HEAD of the current git repository <project>-v<version>.",
)
@click.option("--allow-dirty", is_flag=True, help="With --git-tag: tag even if the work tree has changes.")
@registry_options
@upload_options
@json_option
@quiet_option
def push_command(
    files: tuple[Path, ...],
    namespace: str,
    git_tag: bool,
    allow_dirty: bool,
    as_json: bool,
    quiet: bool,
    **kw: Any,
) -> None:
    """Publish wheel and sdist FILES under NAMESPACE (e.g. registry.example.com/py).

    Each project goes to NAMESPACE/<normalized name>, each version to one artifact tagged with
    it. A version gains new files; a file name already published with other content is refused
    (exit 7), the same content again is a no-op. --git-tag creates the git tag
    <project>-v<version> at HEAD once the push succeeded; it refuses a dirty work tree (exit 2,
    unless --allow-dirty) and a tag of that name on another commit (exit 7) before pushing.
    """
    plan = None
    if git_tag:
        dists = [parse_filename(f.name) for f in files]
        plan = plan_tags(Path.cwd(), [(d.project, str(d.version)) for d in dists], allow_dirty=allow_dirty)
    results = push_distributions(
        list(files),
        namespace,
        session=session_from(kw),
        listener=listener("pushing", quiet=quiet or as_json),
    )
    tags = create_tags(plan) if plan is not None else ()
    if as_json:
        emit_json({"releases": [r.to_json() for r in results], **({"gitTags": list(tags)} if plan else {})})
        return
    for tag in tags:
        if not quiet:
            click.echo(f"git tag {tag} created at {plan.head[:12] if plan else ''}", err=True)
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
@output_dir_option("dest", default=Path(), help="Directory to write the files into.")
@click.option(
    "--filter", "filters", multiple=True, help="Only files matching this glob, e.g. '*.whl' (repeatable)."
)
@click.option("--pre", is_flag=True, help="Let the latest version be a pre-release.")
@registry_options
@download_options
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
