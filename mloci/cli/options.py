"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mloci.errors import UsageError
from mloci.store import Session, StoreOptions

F = TypeVar("F", bound=Callable[..., Any])


def registry_options(func: F) -> F:
    """--plain-http / --insecure / --ca-file: how to reach a registry (every command that talks to one)."""
    decorators = [
        click.option(
            "--plain-http/--https",
            "plain_http",
            default=None,
            help="Force plain HTTP or HTTPS. Default: HTTPS, except loopback registries that only speak HTTP.",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            envvar="MLOCI_INSECURE",
            help="Do not verify the registry's TLS certificate (a warning is printed).",
        ),
        click.option(
            "--ca-file",
            type=click.Path(exists=True, dir_okay=False),
            envvar="MLOCI_CA_FILE",
            help="PEM bundle of CAs to trust for the registry [env: MLOCI_CA_FILE].",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


_concurrency_option = click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=StoreOptions.concurrency,
    show_default=True,
    envvar="MLOCI_CONCURRENCY",
    help="Blobs transferred at once [env: MLOCI_CONCURRENCY].",
)


def download_options(func: F) -> F:
    """--concurrency, for commands that download blobs (the registry options come separately)."""
    return _concurrency_option(func)


def upload_options(func: F) -> F:
    """--concurrency / --chunk-size, for commands that upload blobs; nowhere else, so --help stays honest."""
    func = click.option(
        "--chunk-size",
        type=click.IntRange(min=1),
        default=None,
        envvar="MLOCI_CHUNK_SIZE",
        help="Upload in PATCH chunks of this many bytes (default: one streamed PATCH per blob).",
    )(func)
    return _concurrency_option(func)


def store_options(kwargs: dict[str, Any]) -> StoreOptions:
    """Pop the registry (and, where offered, transfer) options out of a command's kwargs."""
    insecure = bool(kwargs.pop("insecure"))
    if insecure:
        click.echo("mloci: warning: TLS certificate verification is disabled (--insecure)", err=True)
    return StoreOptions(
        plain_http=kwargs.pop("plain_http"),
        insecure=insecure,
        ca_file=kwargs.pop("ca_file"),
        concurrency=kwargs.pop("concurrency", StoreOptions.concurrency),
        chunk_size=kwargs.pop("chunk_size", None),
    )


class _AliasedOption(click.Option):
    """An option whose help shows only its first two spellings; the rest are accepted aliases."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        metavar = record[0].rpartition(" ")[2] if " " in record[0] else ""
        return (f"{', '.join(self.opts[:2])} {metavar}".strip(), record[1])


def output_dir_option(name: str, *, default: Path | None, help: str) -> Callable[[F], F]:
    """``-o/--output DIR`` (also accepted: ``-d/--dest``), the one way every download names its target."""
    return click.option(
        "-o",
        "--output",
        "-d",
        "--dest",
        name,
        cls=_AliasedOption,
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=default is not None,
        help=help,
    )


def session_from(kwargs: dict[str, Any]) -> Session:
    """Pop the registry options into a session that lives as long as the command (click closes it)."""
    return click.get_current_context().with_resource(Session(store_options(kwargs)))


def parse_pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    """``KEY=VALUE`` options (annotations, labels, env) as a dict; a malformed one is a usage error."""
    parsed: dict[str, str] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid {what} {value!r}", hint="use KEY=VALUE")
        parsed[key] = item
    return parsed


def key_option(help: str) -> Callable[[F], F]:
    """``--key PATH``: a signing key (private for sign/attest, public for verify)."""
    return click.option(
        "--key", "key", required=True, type=click.Path(dir_okay=False, path_type=Path), help=help
    )


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
