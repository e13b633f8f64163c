"""Lifecycle commands: tag, promote, history, rollback, copy, ls, diff, gc."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mloci.cli._output import emit_json, human_size, printable
from mloci.cli.options import json_option, registry_options, session_from, upload_options
from mloci.ops.diff import diff
from mloci.ops.gc import gc
from mloci.ops.listing import list_versions
from mloci.ops.promote import history, promote, rollback
from mloci.ops.refs import parse_reference
from mloci.ops.tag import tag
from mloci.ops.transfer import copy
from mloci.project import load_project


def _short(digest: object) -> str:
    return str(digest)[:19]


@click.command("tag")
@click.argument("reference")
@click.argument("tags", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Allow moving a version tag (they are immutable otherwise).")
@registry_options
@json_option
def tag_command(reference: str, tags: tuple[str, ...], force: bool, as_json: bool, **kw: Any) -> None:
    """Add TAGS to the manifest REFERENCE names: the same bytes, no blob moves."""
    result = tag(parse_reference(reference), tags, session=session_from(kw), force=force)
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo(str(result.reference))


@click.command("promote")
@click.argument("reference")
@click.option("--to", "environment", required=True, help="Environment to promote into (e.g. staging, prod).")
@click.option("--reason", help="Why; kept in the promotion record.")
@click.option(
    "--policy", type=click.Path(exists=True, dir_okay=False), help="Policy file that must pass first."
)
@click.option("--ci-url", help="CI run URL for the record (default: detected from CI environment variables).")
@registry_options
@upload_options
@json_option
def promote_command(
    reference: str,
    environment: str,
    reason: str | None,
    policy: str | None,
    ci_url: str | None,
    as_json: bool,
    **kw: Any,
) -> None:
    """Point ENVIRONMENT's alias at exactly the manifest REFERENCE names, and record who, when and why.

    Nothing is rebuilt or re-uploaded: the same digest is retagged (or copied by digest when the
    environment lives in another repository or registry). Deployments should pin the printed digest.
    """
    project = load_project()
    session = session_from(kw)
    result = promote(
        parse_reference(reference),
        environment,
        project=project,
        reason=reason,
        session=session,
        policy=Path(policy) if policy else None,
        ci_url=ci_url,
    )
    if as_json:
        emit_json(result.to_json())
        return
    if result.unchanged:
        click.echo(f"unchanged: {environment} already is {result.digest}", err=True)
    else:
        was = _short(result.previous) if result.previous else "nothing"
        click.echo(f"promoted to {environment} (was {was}); record {_short(result.record)}", err=True)
    click.echo(str(result.reference))


@click.command("history")
@click.argument("repository", required=False)
@click.option("--env", "environment", help="Only this environment.")
@registry_options
@json_option
def history_command(repository: str | None, environment: str | None, as_json: bool, **kw: Any) -> None:
    """Every promotion recorded in REPOSITORY, newest first: when, who, from → to, why."""
    repo = parse_reference(repository) if repository else None
    found = history(repo, environment, project=load_project(), session=session_from(kw))
    if as_json:
        emit_json(found.to_json())
        return
    if not found.entries:
        where = found.repository.name + (f" for {environment}" if environment else "")
        click.echo(printable(f"no promotions recorded in {where}"), err=True)
    for entry in found:
        r = entry.record
        was = _short(r.previous) if r.previous else "(none)"
        why = f"  {r.reason}" if r.reason else ""
        click.echo(
            printable(
                f"{r.timestamp:%Y-%m-%d %H:%M:%S}Z  {r.environment:<10} {was} → {_short(r.digest)}  {r.actor}{why}"
            )
        )


@click.command("rollback")
@click.argument("repository", required=False)
@click.option("--env", "environment", required=True, help="Environment to roll back.")
@click.option("--reason", help="Why; kept in the promotion record.")
@registry_options
@upload_options
@json_option
def rollback_command(
    repository: str | None, environment: str, reason: str | None, as_json: bool, **kw: Any
) -> None:
    """Point ENV's alias back at the digest it named before the current one (recorded as a promotion)."""
    project = load_project()
    repo = parse_reference(repository) if repository else None
    result = rollback(repo, environment, project=project, reason=reason, session=session_from(kw))
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(
        f"rolled {environment} back from {_short(result.previous)} to {_short(result.digest)}", err=True
    )
    click.echo(str(result.reference))


@click.command("copy")
@click.argument("source")
@click.argument("destination")
@click.option("--with-referrers", is_flag=True, help="Also copy signatures, SBOMs, attestations and records.")
@registry_options
@upload_options
@json_option
def copy_command(source: str, destination: str, with_referrers: bool, as_json: bool, **kw: Any) -> None:
    """Copy SOURCE to DESTINATION (registries or the local store), digest preserved bit for bit."""
    result = copy(
        parse_reference(source),
        parse_reference(destination),
        session=session_from(kw),
        with_referrers=with_referrers,
    )
    if as_json:
        emit_json(result.to_json())
        return
    s = result.stats
    click.echo(
        f"copied {s.blobs_copied} blobs ({human_size(s.bytes_copied)}), mounted {s.blobs_mounted}, "
        f"{s.blobs_present} present; {len(s.referrers)} referrers",
        err=True,
    )
    click.echo(str(result.destination))


@click.command("ls")
@click.argument("repository")
@registry_options
@json_option
def ls_command(repository: str, as_json: bool, **kw: Any) -> None:
    """List the versions in REPOSITORY: version, git SHA, created, key metrics, environment aliases."""
    repo = parse_reference(repository)
    broken: list[str] = []
    versions = list_versions(repo, session=session_from(kw), broken=broken)
    for line in broken:
        click.echo(f"mloci: warning: {line}", err=True)
    if as_json:
        emit_json(
            {"repository": repo.name, "versions": [v.to_json() for v in versions], "brokenTags": broken}
        )
        return
    if versions:
        click.echo(f"{'VERSION':<16} {'GIT SHA':<8} {'DIGEST':<19}  {'CREATED':<20} METRICS")
    for v in versions:
        metrics = " ".join(f"{k}={v.metrics[k]}" for k in sorted(v.metrics)[:4])
        aliases = f"  [{', '.join(v.aliases)}]" if v.aliases else ""
        click.echo(
            printable(
                f"{(v.version or '-'):<16} {(v.revision or '-')[:7]:<8} {_short(v.digest)}  {(v.created or '-'):<20} "
                f"{metrics}{aliases}"
            )
        )


@click.command("diff")
@click.argument("left")
@click.argument("right")
@registry_options
@json_option
def diff_command(left: str, right: str, as_json: bool, **kw: Any) -> None:
    """Show what differs between two artifacts: metadata, metrics, dependencies, files (by digest)."""
    result = diff(parse_reference(left), parse_reference(right), session=session_from(kw))
    if as_json:
        emit_json(result.to_json())
        return
    if result.identical:
        click.echo("identical (same manifest digest)")
        return
    for title, section in (
        ("metadata", result.metadata),
        ("metrics", result.metrics),
        ("dependencies", result.dependencies),
        ("files", result.files),
    ):
        if not section:
            continue
        click.echo(f"{title}:")
        for key, (a, b) in section.items():
            delta = ""
            if isinstance(a, int | float) and isinstance(b, int | float):
                delta = f"  ({b - a:+.4g})"
            click.echo(
                printable(
                    f"  {key}: {a if a is not None else '(absent)'} → {b if b is not None else '(absent)'}{delta}"
                )
            )
    click.echo(f"{result.unchanged_files} files unchanged")


@click.command("gc")
@click.argument("repository")
@click.option(
    "--keep-last", type=click.IntRange(min=0), required=True, help="Versions to keep, newest first."
)
@click.option("--dry-run", is_flag=True, help="Show the plan; delete nothing.")
@click.option(
    "--grace-seconds",
    type=click.FloatRange(min=0),
    default=600,
    show_default=True,
    help="Local store: keep unreferenced blobs younger than this (a push may still be writing them).",
)
@registry_options
@json_option
def gc_command(
    repository: str, keep_last: int, dry_run: bool, grace_seconds: float, as_json: bool, **kw: Any
) -> None:
    """Delete old versions of REPOSITORY that no environment alias holds, with their referrers.

    The registry reclaims blob space with its own garbage collection afterwards.
    """
    plan = gc(
        parse_reference(repository),
        keep_last=keep_last,
        dry_run=dry_run,
        session=session_from(kw),
        grace_seconds=grace_seconds,
    )
    for line in plan.broken_tags:
        click.echo(f"mloci: warning: {line}", err=True)
    if as_json:
        emit_json(plan.to_json())
        return
    verb = "would delete" if dry_run else "deleted"
    for v in plan.delete:
        extra = len(plan.attachments.get(str(v.digest), []))
        click.echo(
            printable(
                f"{verb} {v.version or '-'} {_short(v.digest)} ({', '.join(v.tags)}) and {extra} attached"
            )
        )
    for v in plan.keep:
        why = f"held by {', '.join(v.aliases)}" if v.aliases else "recent"
        click.echo(printable(f"keep   {v.version or '-'} {_short(v.digest)} ({why})"))
