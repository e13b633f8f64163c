from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mloci.cli._output import emit_json, human_size
from mloci.cli.options import json_option, registry_options, session_from
from mloci.ops.archive import export, import_archive
from mloci.ops.refs import parse_reference


@click.command("export")
@click.argument("references", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Archive file to write.",
)
@click.option(
    "--with-referrers",
    is_flag=True,
    help="Also export signatures, SBOMs, attestations and promotion records.",
)
@click.option("--compress", is_flag=True, help="gzip the archive (deterministic: level 6, no name, mtime 0).")
@registry_options
@json_option
def export_command(
    references: tuple[str, ...], output: Path, with_referrers: bool, compress: bool, as_json: bool, **kw: Any
) -> None:
    """Write REFERENCES into one OCI image-layout tar, for air-gapped transfer.

    The same artifacts always give the same archive bytes. Read it in place with
    oci-archive:PATH[:NAME][@DIGEST] references (inspect, verify, pull), load it with
    'mloci import', or use it with skopeo (skopeo inspect oci-archive:PATH:NAME).
    """
    result = export(
        [parse_reference(r) for r in references],
        output,
        with_referrers=with_referrers,
        compress=compress,
        session=session_from(kw),
    )
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(
        f"exported {len(result.artifacts)} artifacts, {len(result.referrers)} referrers, {result.blobs} blobs "
        f"({human_size(result.size)})",
        err=True,
    )
    click.echo(f"{result.output} {result.digest}")


@click.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", required=False)
@registry_options
@json_option
def import_command(archive: Path, target: str | None, as_json: bool, **kw: Any) -> None:
    """Load every artifact of ARCHIVE (from 'mloci export') into the local store or TARGET.

    TARGET is REGISTRY[/NAMESPACE]; each artifact keeps its repository under it and every
    digest is unchanged. Referrers in the archive are attached again at the destination.
    """
    result = import_archive(archive, target, session=session_from(kw))
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(
        f"imported {len(result.artifacts)} artifacts, {len(result.referrers)} referrers; copied "
        f"{result.blobs_copied} blobs ({human_size(result.bytes_copied)}), {result.blobs_present} present",
        err=True,
    )
    for artifact in result.artifacts:
        click.echo(artifact.reference)
