from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click

from mloci.cli._output import emit_json, human_size, listener
from mloci.cli.options import json_option, quiet_option, registry_options, store_options
from mloci.errors import MlociError, UsageError
from mloci.ops.pull import pull
from mloci.ops.refs import parse_reference


def check_output_file(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written, before anything else is written."""
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory", hint="name a file")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: the directory {parent} does not exist", hint="create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write into {parent} (permission denied)")


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it: readers see the old file or the new."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
                os.fchmod(handle.fileno(), 0o644)  # mkstemp makes 0600; serving containers run as others
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise MlociError(f"cannot write {path}: {exc.strerror or exc}") from exc


@click.command("pull")
@click.argument("reference")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write the files into (default: ./<name>).",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help="Pull only files matching a glob ('*.onnx') or a layer kind (weight, weight.config, doc, code, dataset).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Pull into a non-empty directory: replace files with the artifact's names; everything else stays.",
)
@click.option(
    "--digest-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the resolved manifest digest to this file (for the serving container).",
)
@click.option(
    "--verify-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Public key (PEM): pull only when a signature by it binds the digest; else exit 6, nothing written.",
)
@registry_options
@json_option
@quiet_option
def pull_command(
    reference: str,
    output: Path | None,
    filters: tuple[str, ...],
    force: bool,
    digest_file: Path | None,
    verify_key: Path | None,
    as_json: bool,
    quiet: bool,
    **kw: Any,
) -> None:
    """Fetch the artifact REFERENCE into a directory, verifying every byte first.

    Files appear only after every blob matched its digest; a failed pull leaves nothing.
    Pulling the digest a directory already holds does nothing (safe for init containers).
    With --verify-key the cosign signature is checked before anything is downloaded, and
    exactly the digest it binds is pulled.
    """
    ref = parse_reference(reference)
    target = output or Path(ref.repository.rsplit("/", 1)[-1])
    if digest_file is not None:
        check_output_file(digest_file, "--digest-file")
    options = store_options(kw)
    progress = listener("pulling", quiet=quiet or as_json)
    verification: dict[str, Any] | None = None
    if verify_key is not None:
        from mloci.ops.verified_pull import pull_verified  # noqa: PLC0415  (cryptography only when verifying)

        verified = pull_verified(
            ref, target, verify_key, options=options, filters=filters, force=force, listener=progress
        )
        result, verification = verified.pulled, verified.verification.to_json()
    else:
        result = pull(ref, target, options=options, filters=filters, force=force, listener=progress)
    if digest_file is not None:
        write_atomically(digest_file, f"{result.digest}\n")
    if as_json:
        emit_json({**result.to_json(), **({"verification": verification} if verification else {})})
        return
    if not quiet:
        if verify_key is not None:
            click.echo(f"verified: signed by the key in {verify_key.name}", err=True)
        if result.unchanged:
            click.echo(f"unchanged: {target} already holds {result.digest}", err=True)
        else:
            click.echo(
                f"pulled {len(result.files)} files ({human_size(result.bytes_downloaded)}) into {target}",
                err=True,
            )
        if result.replaced:
            click.echo(
                f"replaced {len(result.replaced)} entries 'mloci pull' had not written: {', '.join(result.replaced)}",
                err=True,
            )
    click.echo(str(result.reference))
