"""Supply-chain commands: sbom, attest, verify-attestation, attach, discover."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from mloci.cli._output import emit_json, human_size, printable
from mloci.cli.options import (
    json_option,
    key_option,
    parse_pairs,
    registry_options,
    session_from,
    upload_options,
)
from mloci.cli.trust import _passphrase, identity_options, identity_rule
from mloci.errors import UsageError
from mloci.ops.refs import parse_reference

if TYPE_CHECKING:
    from mloci.ops.attach import Node


def _short(digest: object) -> str:
    return str(digest)[:19]


def _write_output(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


@click.command("sbom")
@click.argument("target", metavar="BUNDLE_OR_REF")
@click.option("--attach", is_flag=True, help="Push the SBOM as a referrer of the artifact (REF only).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the SBOM to this file."
)
@registry_options
@upload_options
@json_option
def sbom_command(target: str, attach: bool, output: Path | None, as_json: bool, **kw: Any) -> None:
    """A CycloneDX 1.6 SBOM (ML-BOM) of a bundle directory or a pushed artifact.

    Lists the model, its files with SHA-256 hashes, pinned Python requirements, the framework,
    training datasets and a model card. The same bundle gives the same bytes. For a REF only the
    manifest and manifest.json are read, never the weights. Without -o or --attach the SBOM is
    printed on stdout.
    """
    from mloci.ops.sbom import sbom  # noqa: PLC0415  (cyclonedx loads only for this command)

    result = sbom(target, attach=attach, session=session_from(kw))
    if output is not None:
        _write_output(output, result.document)
    if as_json:
        value = result.to_json()
        value["output"] = str(output) if output else None
        if output is None:
            value["sbom"] = json.loads(result.document)
        emit_json(value)
        return
    if output is None and not attach:
        sys.stdout.write(result.document.decode())
        sys.stdout.flush()
        return
    if output is not None:
        click.echo(f"wrote {output} ({result.components} components, CycloneDX 1.6)", err=True)
    if result.attached is not None:
        click.echo(f"attached to {result.attached.subject}", err=True)
        click.echo(str(result.attached.reference))


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--started-on {text!r} is not an RFC 3339 time", hint="e.g. 2026-11-23T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise UsageError(f"--started-on {text!r} has no UTC offset", hint="end it with Z or +HH:MM")
    return moment


@click.command("attest")
@click.argument("reference")
@key_option("Private key (PEM, from mloci keygen).")
@click.option("--builder-id", help="SLSA builder.id (default: $MLOCI_BUILDER_ID, the CI runner, or local).")
@click.option(
    "--started-on", metavar="TIME", help="When the build started, RFC 3339 with an offset (default: now)."
)
@click.option(
    "--ci-url", help="CI run URL for invocationId (default: detected from CI environment variables)."
)
@click.option(
    "--format",
    "attest_format",
    type=click.Choice(("bundle", "dsse", "both")),
    default="bundle",
    show_default=True,
    help="bundle: a sigstore bundle referrer (as cosign attest v3); dsse: the bare envelope as a referrer; both.",
)
@registry_options
@upload_options
@json_option
def attest_command(
    reference: str,
    key: Path,
    builder_id: str | None,
    started_on: str | None,
    ci_url: str | None,
    attest_format: Literal["dsse", "bundle", "both"],
    as_json: bool,
    **kw: Any,
) -> None:
    """Sign SLSA v1 provenance for REFERENCE (in-toto Statement, DSSE, in a sigstore bundle) and attach it.

    The passphrase comes from $MLOCI_KEY_PASSWORD, else it is asked for on the terminal.
    """
    from mloci.ops.attest import attest  # noqa: PLC0415
    from mloci.ops.sign import is_encrypted  # noqa: PLC0415

    ref = parse_reference(reference)
    password = _passphrase(confirm=False) if is_encrypted(key) else None
    result = attest(
        ref,
        key,
        password,
        builder_id=builder_id,
        started_on=_time(started_on) if started_on else None,
        ci_url=ci_url,
        format=attest_format,
        session=session_from(kw),
    )
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(f"attested {result.reference} (SLSA provenance v1)", err=True)
    if result.bundle is not None and result.bundle is not result.attached:
        click.echo(str(result.bundle.reference))
    click.echo(str(result.attached.reference))


@click.command("verify-attestation")
@click.argument("reference")
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Public key (PEM) the attestation must be signed with.",
)
@identity_options
@click.option(
    "--type",
    "predicate_type",
    default="https://slsa.dev/provenance/v1",
    show_default=True,
    help="Predicate type to require ('any' for every type).",
)
@registry_options
@json_option
def verify_attestation_command(
    reference: str,
    key: Path | None,
    trusted_root: Path | None,
    predicate_type: str,
    as_json: bool,
    **kw: Any,
) -> None:
    """Exit 0 only when an attestation signed by KEY (or the identity) binds exactly REFERENCE's digest.

    Reads DSSE envelope referrers, sigstore bundles (cosign attest v3, mloci attest --format
    bundle) and cosign v1/v2's sha256-<hex>.att layers; keyless ones (certificate, Rekor SET or
    RFC 3161 timestamp) with --certificate-identity/--certificate-oidc-issuer. Else exit 6.
    """
    from mloci.ops.attest import verify_attestation  # noqa: PLC0415

    rule = identity_rule(kw)
    if (key is None) == (rule is None):
        raise UsageError(
            "verify with either --key or --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]"
        )
    result = verify_attestation(
        parse_reference(reference),
        key,
        identity=rule,
        trusted_root=trusted_root,
        predicate_type=None if predicate_type == "any" else predicate_type,
        session=session_from(kw),
    )
    if as_json:
        emit_json(result.to_json())
        return
    who = key.name if key is not None else rule.describe() if rule else "?"
    click.echo(f"verified: {len(result.attestations)} of {result.checked} attestations match {who}", err=True)
    click.echo(str(result.reference))


@click.command("attach")
@click.argument("reference")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--artifact-type",
    required=True,
    help="What FILE is, e.g. application/vnd.mloci.test-results.v1+json, application/sarif+json.",
)
@click.option("--media-type", help="Media type of the file's layer (default: the artifact type).")
@click.option(
    "-a",
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="Manifest annotation. Repeatable.",
)
@registry_options
@upload_options
@json_option
def attach_command(
    reference: str,
    file: Path,
    artifact_type: str,
    media_type: str | None,
    annotations: tuple[str, ...],
    as_json: bool,
    **kw: Any,
) -> None:
    """Attach FILE (test results, a scan, an evaluation report, an SBOM…) to REFERENCE as a referrer."""
    from mloci.ops.attach import attach_file  # noqa: PLC0415

    result = attach_file(
        parse_reference(reference),
        file,
        artifact_type=artifact_type,
        media_type=media_type,
        annotations=parse_pairs(annotations, "annotation"),
        session=session_from(kw),
    )
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(f"attached {file.name} ({human_size(result.layer.size)}) to {result.subject}", err=True)
    click.echo(str(result.reference))


def _tree_lines(nodes: Sequence[Node], prefix: str) -> list[str]:
    lines: list[str] = []
    for index, node in enumerate(nodes):
        last = index == len(nodes) - 1
        kind = f"  [{node.kind}]" if node.kind else ""
        lines.append(
            f"{prefix}{'└── ' if last else '├── '}{node.artifact_type or '-'}  {_short(node.descriptor.digest)}{kind}"
        )
        child_prefix = prefix + ("    " if last else "│   ")
        for entry in node.cosign:
            lines.append(f"{child_prefix}· cosign {entry.kind}: {entry.tag} ({entry.layers})")
        lines.extend(_tree_lines(node.referrers, child_prefix))
    return lines


@click.command("discover")
@click.argument("reference")
@click.option("--artifact-type", help="Only attachments of this type (and what is attached to them).")
@registry_options
@json_option
def discover_command(reference: str, artifact_type: str | None, as_json: bool, **kw: Any) -> None:
    """Show the tree of everything attached to REFERENCE: SBOMs, attestations, signatures, records."""
    from mloci.ops.attach import discover  # noqa: PLC0415

    result = discover(parse_reference(reference), artifact_type=artifact_type, session=session_from(kw))
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(str(result.reference))
    for entry in result.cosign:
        click.echo(printable(f"· cosign {entry.kind}: {entry.tag} ({entry.layers})"))
    for line in _tree_lines(result.referrers, ""):
        click.echo(printable(line))
