from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mloci.bundle.tarpack import parse_override
from mloci.cli._output import emit_json, human_size, listener
from mloci.cli.options import json_option, quiet_option, registry_options, session_from, upload_options
from mloci.ops.push import Format, push


@click.command("push")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("target", required=False)
@click.option("-t", "--tag", "tags", multiple=True, help="Extra tag to set (repeatable).")
@click.option(
    "--force", is_flag=True, help="Overwrite a version tag that names different content. Use with care."
)
@click.option(
    "--format",
    "layout",
    type=click.Choice(["modelpack", "image-volume"]),
    default="modelpack",
    show_default=True,
    help="modelpack: one raw layer per file. image-volume: an image with the files under /models/<name>, "
    "mountable as a Kubernetes image volume or KServe modelcar (tags <version>-image).",
)
@click.option(
    "--pack",
    "pack",
    multiple=True,
    metavar="DIR=tar|raw",
    help="Pack directory DIR as one tar layer, or each of its files as its own raw layer (repeatable; "
    "overrides the manifest's 'pack' section). By default a top-level directory of 100 or more small "
    "files becomes a tar layer.",
)
@registry_options
@upload_options
@json_option
@quiet_option
def push_command(
    bundle: Path,
    target: str | None,
    tags: tuple[str, ...],
    force: bool,
    layout: Format,
    pack: tuple[str, ...],
    as_json: bool,
    quiet: bool,
    **kw: Any,
) -> None:
    """Pack BUNDLE into an OCI artifact and push it to TARGET.

    TARGET is a repository such as registry.example.com/ml/churn-model (a tag in it is
    added to the tags). Without TARGET the bundle's name goes to $MLOCI_REGISTRY, or to
    the local store when that is unset. Tags set: <version> and <version>-<git sha>.
    """
    result = push(
        bundle,
        target,
        format=layout,
        session=session_from(kw),
        extra_tags=tags,
        force=force,
        listener=listener("pushing", quiet=quiet or as_json),
        pack_overrides=[parse_override(text) for text in pack],
    )
    if as_json:
        emit_json(result.to_json())
        return
    if not quiet:
        if result.unchanged:
            click.echo("unchanged: this exact artifact is already published", err=True)
        else:
            mounted = f", {result.blobs_mounted} mounted" if result.blobs_mounted else ""
            click.echo(
                f"uploaded {result.blobs_uploaded} blobs ({human_size(result.bytes_uploaded)}){mounted}, "
                f"{result.blobs_skipped} already present; tags: {', '.join(result.tags)}",
                err=True,
            )
    click.echo(str(result.reference))
