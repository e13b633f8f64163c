"""Trust commands: keygen, sign, verify (cosign-compatible key-based signatures)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mloci.cli._output import emit_json, printable
from mloci.cli.options import (
    json_option,
    parse_pairs,
    registry_options,
    session_from,
    upload_options,
)
from mloci.errors import UsageError
from mloci.ops.model_signature import (
    sign_model_artifact,
    sign_model_directory,
    verify_model_artifact,
    verify_model_directory,
)
from mloci.ops.refs import parse_reference
from mloci.ops.sign import (
    IDENTITY_TOKEN_ENV,
    SIGN_FORMATS,
    SignFormat,
    generate_keypair,
    is_encrypted,
    sign,
    sign_keyless,
    verify,
)
from mloci.trust.keyless import TRUSTED_ROOT_ENV, IdentityRule
from mloci.trust.keys import ALGORITHMS, Algorithm
from mloci.trust.verifier import TrustRule, verify_bundle_file
from mloci.types.digest import Digest

F = TypeVar("F", bound=Callable[..., Any])

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
@click.option(
    "--algorithm",
    type=click.Choice(ALGORITHMS),
    default="ecdsa-p256",
    show_default=True,
    help="Key type; cosign verifies both.",
)
@json_option
def keygen_command(
    output_key_prefix: str, allow_unencrypted: bool, algorithm: Algorithm, as_json: bool
) -> None:
    """Create a key pair for signing (ECDSA P-256 or Ed25519); cosign accepts the public key with --key.

    The passphrase comes from $MLOCI_KEY_PASSWORD, else it is asked for twice on the terminal.
    """
    private, public = generate_keypair(
        Path(output_key_prefix),
        _passphrase(confirm=True),
        allow_unencrypted=allow_unencrypted,
        algorithm=algorithm,
    )
    if as_json:
        emit_json({"privateKey": str(private), "publicKey": str(public)})
        return
    click.echo(printable(f"private key {private} (keep it secret), public key {public}"), err=True)
    click.echo(str(public))


def identity_options(func: F) -> F:
    """cosign's keyless verification options: identity and issuer, exact or regexp, and the trust root."""
    for option in reversed(
        (
            click.option(
                "--certificate-identity", help="Keyless: the certificate SAN that must have signed (exact)."
            ),
            click.option("--certificate-identity-regexp", help="Keyless: the SAN as a full-match regexp."),
            click.option(
                "--certificate-oidc-issuer", help="Keyless: the OIDC issuer of the certificate (exact)."
            ),
            click.option(
                "--certificate-oidc-issuer-regexp", help="Keyless: the issuer as a full-match regexp."
            ),
            click.option(
                "--trusted-root",
                type=click.Path(dir_okay=False, path_type=Path),
                help=f"sigstore trusted_root.json (else ${TRUSTED_ROOT_ENV}, else sigstore's offline TUF cache); "
                "with --key it also checks transparency-log entries.",
            ),
        )
    ):
        func = option(func)
    return func


def identity_rule(kw: dict[str, Any]) -> IdentityRule | None:
    """The keyless rule the identity options give (popped from ``kw``), or None when none is given."""
    values = {
        name: kw.pop(name, None)
        for name in (
            "certificate_identity",
            "certificate_identity_regexp",
            "certificate_oidc_issuer",
            "certificate_oidc_issuer_regexp",
        )
    }
    if not any(values.values()):
        return None
    return IdentityRule(
        identity=values["certificate_identity"],
        identity_regexp=values["certificate_identity_regexp"],
        issuer=values["certificate_oidc_issuer"],
        issuer_regexp=values["certificate_oidc_issuer_regexp"],
    )


def _key_or_identity(key: Path | None, rule: IdentityRule | None) -> None:
    if (key is None) == (rule is None):
        raise UsageError(
            "verify with either --key or --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]"
        )


def model_signing_options(func: F) -> F:
    """``--model-signing`` (the argument is a model directory) and ``--signature PATH``."""
    func = click.option(
        "--ignore-path",
        "ignore_paths",
        multiple=True,
        metavar="PATH",
        help="With --model-signing (sign): leave this path (relative to DIR) out of the signature. Repeatable.",
    )(func)
    func = click.option(
        "--signature",
        type=click.Path(dir_okay=False, path_type=Path),
        help="With --model-signing: the signature file (default: DIR/model.sig).",
    )(func)
    return click.option(
        "--model-signing",
        is_flag=True,
        help="An OpenSSF model signature over the files of a model directory (model.sig, what "
        "model_signing sign/verify key read and write) or of an artifact (a referrer, from its layer digests).",
    )(func)


@click.command("sign")
@click.argument("reference")
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key (PEM, from mloci keygen: ECDSA P-256 or Ed25519).",
)
@click.option(
    "--keyless",
    is_flag=True,
    help=f"Sign with a Fulcio certificate for the CI's OIDC identity (${IDENTITY_TOKEN_ENV} or GitHub "
    "Actions id-token), logged in Rekor; needs the sigstore extra and the network.",
)
@click.option(
    "--format",
    "sign_format",
    type=click.Choice(SIGN_FORMATS),
    default="bundle",
    show_default=True,
    help="bundle: sigstore bundle referrer (cosign v3); legacy: the .sig tag (cosign v2); both.",
)
@annotation_option
@model_signing_options
@registry_options
@upload_options
@json_option
def sign_command(
    reference: str,
    key: Path | None,
    keyless: bool,
    sign_format: SignFormat,
    annotations: tuple[str, ...],
    model_signing: bool,
    signature: Path | None,
    ignore_paths: tuple[str, ...],
    as_json: bool,
    **kw: Any,
) -> None:
    """Sign the manifest REFERENCE names, as cosign does.

    By default a sigstore bundle (DSSE, in-toto statement of type
    https://sigstore.dev/cosign/sign/v1, subject = the manifest digest) is attached as an OCI
    referrer, as cosign v3 writes it; --format legacy writes cosign v2's sha256-<hex>.sig tag.
    The passphrase comes from $MLOCI_KEY_PASSWORD, else it is asked for on the terminal.
    """
    if keyless:
        if key is not None or model_signing or sign_format != "bundle":
            raise UsageError("--keyless signs a bundle without --key (and without --model-signing)")
        done = sign_keyless(
            parse_reference(reference),
            annotations=parse_pairs(annotations, "annotation"),
            session=session_from(kw),
        )
        if as_json:
            emit_json(done.to_json())
            return
        click.echo(printable(f"signed keyless: {done.bundle_reference}"), err=True)
        click.echo(str(done.reference))
        return
    if key is None:
        raise UsageError("give --key (or --keyless in CI)")
    if model_signing and not Path(reference).is_dir():
        if signature is not None or ignore_paths:
            raise UsageError("--signature and --ignore-path are for a model directory, not a reference")
        password = _passphrase(confirm=False) if is_encrypted(key) else None
        attached = sign_model_artifact(parse_reference(reference), key, password, session=session_from(kw))
        if as_json:
            emit_json(attached.to_json())
            return
        click.echo(
            printable(f"signed the model files of {attached.reference}: {attached.bundle_reference}"),
            err=True,
        )
        click.echo(str(attached.reference))
        return
    if model_signing:
        password = _passphrase(confirm=False) if is_encrypted(key) else None
        signed = sign_model_directory(
            Path(reference), key, password, signature=signature, ignore_paths=ignore_paths
        )
        if as_json:
            emit_json(signed.to_json())
            return
        click.echo(
            printable(f"signed {signed.files} files of {signed.path} (model digest {signed.digest})"),
            err=True,
        )
        click.echo(str(signed.signature))
        return
    claims = parse_pairs(annotations, "annotation")
    ref = parse_reference(reference)
    password = _passphrase(confirm=False) if is_encrypted(key) else None
    result = sign(ref, key, password, annotations=claims, format=sign_format, session=session_from(kw))
    if as_json:
        emit_json(result.to_json())
        return
    state = "already signed with this key" if result.unchanged else "signed"
    where = [str(r) for r in (result.bundle_reference, result.signature_reference) if r is not None]
    click.echo(printable(f"{state}: {', '.join(where)}"), err=True)
    click.echo(str(result.reference))


@click.command("verify")
@click.argument("reference")
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Public key (PEM) a signature must verify with.",
)
@identity_options
@click.option(
    "--require-tlog",
    is_flag=True,
    help="With --key: count only bundles whose transparency-log entry verifies against the trusted root.",
)
@annotation_option
@model_signing_options
@registry_options
@json_option
def verify_command(
    reference: str,
    key: Path | None,
    trusted_root: Path | None,
    require_tlog: bool,
    annotations: tuple[str, ...],
    model_signing: bool,
    signature: Path | None,
    ignore_paths: tuple[str, ...],
    as_json: bool,
    **kw: Any,
) -> None:
    """Exit 0 only when a signature by KEY (or the identity) binds exactly the digest REFERENCE names.

    Looks at sigstore bundles attached as referrers (cosign v3, mloci sign), then cosign's legacy
    sha256-<hex>.sig tag (cosign v2, mloci sign --format legacy; keyless ones by identity, with
    their certificate and Rekor SET). Keyless bundles need the identity and issuer, and the
    sigstore package (pip install 'mloci[sigstore]'). Exit 6 when no signature counts.
    """
    rule = identity_rule(kw)
    _key_or_identity(key, rule)
    if ignore_paths:
        raise UsageError("--ignore-path is for signing; verification ignores what the signature lists")
    if model_signing and not Path(reference).is_dir():
        found = verify_model_artifact(
            parse_reference(reference), TrustRule.of(key, rule, trusted_root), session=session_from(kw)
        )
        if as_json:
            emit_json(found.to_json())
            return
        click.echo(
            printable(
                f"verified: {len(found.signatures)} model signatures over the files of {found.reference}"
            ),
            err=True,
        )
        click.echo(str(found.reference))
        return
    if model_signing:
        checked = verify_model_directory(
            Path(reference), TrustRule.of(key, rule, trusted_root), signature=signature
        )
        if as_json:
            emit_json(checked.to_json())
            return
        click.echo(
            printable(
                f"verified: {checked.files} files match {checked.signature.name}, signed by {checked.verified.signer}"
            ),
            err=True,
        )
        click.echo(str(checked.verified.digest))
        return
    result = verify(
        parse_reference(reference),
        key,
        identity=rule,
        trusted_root=trusted_root,
        require_tlog=require_tlog,
        required_annotations=parse_pairs(annotations, "annotation"),
        session=session_from(kw),
    )
    if as_json:
        emit_json(result.to_json())
        return
    count = len(result.signatures)
    who = key.name if key is not None else rule.describe() if rule else "?"
    click.echo(printable(f"verified: {count} of {result.checked} signatures match {who}"), err=True)
    click.echo(str(result.reference))


@click.command("verify-bundle")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--digest", "digest", help="The artifact is this manifest digest (image/artifact signatures).")
@click.option(
    "--artifact",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The artifact is this file (blob signatures, statements about a file).",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Public key (PEM) the bundle must be signed with.",
)
@identity_options
@click.option("--type", "predicate_type", help="Require this in-toto predicate type (DSSE bundles).")
@json_option
def verify_bundle_command(
    bundle: Path,
    digest: str | None,
    artifact: Path | None,
    key: Path | None,
    trusted_root: Path | None,
    predicate_type: str | None,
    as_json: bool,
    **kw: Any,
) -> None:
    """Verify a sigstore bundle FILE offline, like cosign verify-blob --bundle (exit 6 when it does not).

    The artifact is a manifest digest (--digest, the statement's subject) or a file (--artifact).
    Key-based bundles need only the key (and --trusted-root to check their transparency-log
    entries, Rekor v1 or v2, and RFC 3161 timestamps); keyless bundles are checked against the trusted root: Fulcio chain at signing time,
    SCT, Rekor inclusion proof, checkpoint and SET, identity and issuer.
    """
    rule = identity_rule(kw)
    _key_or_identity(key, rule)
    parsed = Digest.parse(digest) if digest is not None else None
    trust = TrustRule.of(key, rule, trusted_root)
    result = verify_bundle_file(
        bundle, trust, digest=parsed, artifact=artifact, predicate_type=predicate_type
    )
    if as_json:
        emit_json(result.to_json())
        return
    verified = result.verified
    issuer = f" (issuer {verified.issuer})" if verified.issuer else ""
    log = f", logged in {verified.log.log_url} at index {verified.log.log_index}" if verified.log else ""
    stamped = "".join(f", timestamped {moment.isoformat()}" for moment in verified.timestamps)
    click.echo(
        printable(f"verified: {bundle.name} signed by {verified.signer}{issuer}{log}{stamped}"), err=True
    )
    click.echo(str(verified.digest))
