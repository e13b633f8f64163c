from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mloci.cli._output import emit_json, human_size, listener, printable
from mloci.cli.options import (
    download_options,
    json_option,
    output_dir_option,
    quiet_option,
    registry_options,
    session_from,
)
from mloci.errors import UsageError
from mloci.ops.pull import pull
from mloci.ops.refs import parse_reference


@click.command("pull")
@click.argument("reference")
@output_dir_option("output", default=None, help="Directory to write the files into (default: ./<name>).")
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
@click.option(
    "--verify-identity", help="Keyless: pull only when a certificate with this SAN signed the digest."
)
@click.option("--verify-issuer", help="Keyless: the OIDC issuer that certificate must name.")
@click.option(
    "--trusted-root",
    type=click.Path(dir_okay=False, path_type=Path),
    help="sigstore trusted_root.json for --verify-identity (else $MLOCI_TRUSTED_ROOT, else sigstore's cache).",
)
@click.option(
    "--check",
    "check_env",
    is_flag=True,
    help="After pulling, check this environment against the bundle (as 'mloci check'); exit 12 on a mismatch.",
)
@click.option(
    "--connections",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Download each blob of 32 MiB or more over N connections in byte ranges (faster when one connection "
    "is throttled, e.g. object storage behind the registry); the digest is verified once it is complete.",
)
@registry_options
@download_options
@json_option
@quiet_option
def pull_command(
    reference: str,
    output: Path | None,
    filters: tuple[str, ...],
    force: bool,
    digest_file: Path | None,
    verify_key: Path | None,
    verify_identity: str | None,
    verify_issuer: str | None,
    trusted_root: Path | None,
    check_env: bool,
    connections: int,
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
    identity = None
    if verify_identity is not None or verify_issuer is not None:
        from mloci.trust.keyless import IdentityRule  # noqa: PLC0415

        if verify_key is not None:
            raise UsageError("give --verify-key or --verify-identity/--verify-issuer, not both")
        if verify_identity is None or verify_issuer is None:
            raise UsageError("--verify-identity and --verify-issuer go together")
        identity = IdentityRule(identity=verify_identity, issuer=verify_issuer)
    result = pull(
        ref,
        target,
        session=session_from(kw),
        filters=filters,
        force=force,
        listener=listener("pulling", quiet=quiet or as_json),
        verify_key=verify_key,
        verify_identity=identity,
        trusted_root=trusted_root,
        digest_file=digest_file,
        connections=connections,
    )
    if check_env:  # exit 12 naming each mismatch; the pulled files stay
        from mloci.cli.contract import check_pulled  # noqa: PLC0415

        check_pulled(target)
    if as_json:
        emit_json(result.to_json())
        return
    if not quiet:
        if verify_key is not None:
            click.echo(f"verified: signed by the key in {verify_key.name}", err=True)
        elif verify_identity is not None:
            click.echo(f"verified: signed by {verify_identity}", err=True)
        if result.unchanged:
            click.echo(f"unchanged: {target} already holds {result.digest}", err=True)
        else:
            click.echo(
                f"pulled {len(result.files)} files ({human_size(result.bytes_downloaded)}) into {target}",
                err=True,
            )
        if result.replaced:
            click.echo(
                printable(
                    f"replaced {len(result.replaced)} entries 'mloci pull' had not written: {', '.join(result.replaced)}"
                ),
                err=True,
            )
    click.echo(str(result.reference))
