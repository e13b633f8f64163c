"""Trust commands: keygen, sign, verify (cosign-compatible key-based signatures)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from mloci.cli._output import emit_json
from mloci.cli.options import json_option, key_option, parse_pairs, registry_options, session_from
from mloci.errors import UsageError
from mloci.ops.refs import parse_reference
from mloci.ops.sign import generate_keypair, is_encrypted, sign, verify

PASSWORD_ENV = "MLOCI_KEY_PASSWORD"


def _passphrase(*, confirm: bool) -> bytes:
    """The key passphrase from $MLOCI_KEY_PASSWORD, else a hidden prompt on a terminal."""
    value = os.environ.get(PASSWORD_ENV)
    if value is not None:
        return os.fsencode(value)
    if not sys.stdin.isatty():
        raise UsageError(f"no passphrase: set {PASSWORD_ENV} or run in a terminal to be asked")
    entered: str = click.prompt(
        "Passphrase for the private key", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return os.fsencode(entered)


annotation_option = click.option(
    "-a",
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="A signed claim (sign), or one that must be signed (verify). Repeatable.",
)


@click.command("keygen")
@click.option(
    "--output-key-prefix",
    default="mloci",
    show_default=True,
    help="Write PREFIX.key (private, mode 0600) and PREFIX.pub.",
)
@click.option(
    "--allow-unencrypted",
    is_flag=True,
    help=f"With an empty {PASSWORD_ENV}, write the private key unencrypted (throwaway keys only).",
)
@json_option
def keygen_command(output_key_prefix: str, allow_unencrypted: bool, as_json: bool) -> None:
    """Create an ECDSA P-256 key pair for signing; cosign accepts the public key with --key.

    The passphrase comes from $MLOCI_KEY_PASSWORD, else it is asked for twice on the terminal.
    """
    private, public = generate_keypair(
        Path(output_key_prefix), _passphrase(confirm=True), allow_unencrypted=allow_unencrypted
    )
    if as_json:
        emit_json({"privateKey": str(private), "publicKey": str(public)})
        return
    click.echo(f"private key {private} (keep it secret), public key {public}", err=True)
    click.echo(str(public))


@click.command("sign")
@click.argument("reference")
@key_option("Private key (PEM, from mloci keygen).")
@annotation_option
@registry_options
@json_option
def sign_command(reference: str, key: Path, annotations: tuple[str, ...], as_json: bool, **kw: Any) -> None:
    """Sign the manifest REFERENCE names, cosign-style (tag sha256-<hex>.sig in the same repository).

    The passphrase comes from $MLOCI_KEY_PASSWORD, else it is asked for on the terminal.
    """
    claims = parse_pairs(annotations, "annotation")
    ref = parse_reference(reference)
    password = _passphrase(confirm=False) if is_encrypted(key) else None
    result = sign(ref, key, password, annotations=claims, session=session_from(kw))
    if as_json:
        emit_json(result.to_json())
        return
    state = "already signed with this key" if result.unchanged else "signed"
    click.echo(f"{state}: {result.signature_reference} ({result.signatures} signatures)", err=True)
    click.echo(str(result.reference))


@click.command("verify")
@click.argument("reference")
@key_option("Public key (PEM) the signature must verify with.")
@annotation_option
@registry_options
@json_option
def verify_command(reference: str, key: Path, annotations: tuple[str, ...], as_json: bool, **kw: Any) -> None:
    """Exit 0 only when a signature by KEY binds exactly the digest REFERENCE names (else exit 6).

    Reads signatures made by mloci sign and by cosign sign --key.
    """
    result = verify(
        parse_reference(reference),
        key,
        required_annotations=parse_pairs(annotations, "annotation"),
        session=session_from(kw),
    )
    if as_json:
        emit_json(result.to_json())
        return
    count = len(result.signatures)
    click.echo(f"verified: {count} of {result.checked} signatures match {key.name}", err=True)
    click.echo(str(result.reference))
