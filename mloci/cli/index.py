"""``mloci index``: serve the registry's Python projects as a package index for pip, uv and twine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import click

from mloci.cli._output import emit_json
from mloci.cli.options import json_option, registry_options, session_from, store_options
from mloci.errors import UsageError
from mloci.ops.reserve import reserve
from mloci.pyindex.settings import UpstreamSettings

_UPSTREAM_OPTIONS: Final = (
    click.option(
        "--upstream",
        "upstreams",
        multiple=True,
        metavar="URL",
        help="Simple index serving projects the namespace does not hold, e.g. https://pypi.org/simple/ "
        "(repeatable: asked in order).",
    ),
    click.option(
        "--upstream-timeout",
        type=click.FloatRange(min=0.1),
        default=30.0,
        show_default=True,
        help="Seconds before an unresponsive upstream gets a 502.",
    ),
    click.option(
        "--upstream-cache",
        type=click.FloatRange(min=0),
        default=60.0,
        show_default=True,
        help="Seconds an upstream page is kept at most (less when its Cache-Control says so; 0: never).",
    ),
    click.option(
        "--redirect-upstream-files",
        is_flag=True,
        help="Send clients to the upstream's file URLs instead of streaming files through.",
    ),
    click.option(
        "--cache-upstream",
        "cache_namespace",
        metavar="NAMESPACE",
        help="Keep verified upstream files as releases under this namespace of the registry (apart from "
        "--namespace), so installs keep working when the upstream is down.",
    ),
    click.option(
        "--upstream-ca-file",
        type=click.Path(exists=True, dir_okay=False),
        help="PEM bundle of CAs trusted for HTTPS upstreams, besides the system's (--ca-file and "
        "--insecure are the registry's only).",
    ),
)


def upstream_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The upstream pass-through options, shared by `mloci index serve` and `mloci serve`."""
    for option in reversed(_UPSTREAM_OPTIONS):
        command = option(command)
    return command


def upstream_settings(kw: dict[str, Any]) -> UpstreamSettings:
    """Take the upstream options out of a command's keyword arguments, as IndexConfig fields."""
    return UpstreamSettings(
        upstreams=kw.pop("upstreams"),
        upstream_timeout=kw.pop("upstream_timeout"),
        upstream_cache_seconds=kw.pop("upstream_cache"),
        redirect_upstream_files=kw.pop("redirect_upstream_files"),
        cache_namespace=kw.pop("cache_namespace"),
        upstream_ca_file=kw.pop("upstream_ca_file"),
    )


@click.group("index")
def index_group() -> None:
    """A Python package index (simple API + uploads) over the projects in a registry namespace."""


@index_group.command("serve")
@click.option("--registry", required=True, help="Registry host[:port] holding the projects.")
@click.option("--namespace", default="", help="Repository path the projects live under, e.g. 'py'.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to listen on."
)
@click.option("--read-only", is_flag=True, help="Refuse uploads.")
@upstream_options
@click.option("--require-auth", is_flag=True, help="Refuse requests without credentials, reads too.")
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@registry_options
def serve_command(
    registry: str,
    namespace: str,
    host: str,
    port: int,
    read_only: bool,
    require_auth: bool,
    log_level: str,
    **kw: Any,
) -> None:
    """Serve PEP 503/691 simple pages at /simple/ and take twine uploads at /.

    \b
      mloci index serve --registry registry.example.com --namespace py \\
          --upstream https://pypi.org/simple/
      pip install --index-url http://HOST:PORT/simple/ PROJECT
      twine upload --repository-url http://HOST:PORT/ dist/*

    Projects in the namespace (or reserved with 'mloci index reserve') are served only from the
    registry; every other project comes from the first --upstream that has it. An unreachable
    upstream or registry gives a 502/503, never an empty page.

    Credentials pip or twine send (Basic) are used for the registry; reads without any use the
    server's own (mloci login, docker config, MLOCI_USERNAME/MLOCI_PASSWORD), uploads without
    any are anonymous. --require-auth refuses requests without credentials.

    Exit codes: 2 when the address cannot be used (port in use, unknown --host).
    """
    try:
        from mloci.pyindex.app import IndexConfig, serve  # noqa: PLC0415  (optional dependencies)
    except ImportError as exc:
        raise UsageError(
            f"the index server needs {exc.name or 'starlette and uvicorn'}", hint="pip install 'mloci[index]'"
        ) from None
    upstream = upstream_settings(kw)
    config = IndexConfig(
        registry=registry,
        namespace=namespace,
        options=store_options(kw),
        read_only=read_only,
        require_auth=require_auth,
        **upstream,
    )
    config.check()
    serve(config, host=host, port=port, log_level=log_level)


@index_group.command("reserve")
@click.argument("namespace")
@click.argument("names", nargs=-1, required=True)
@registry_options
@json_option
def reserve_command(namespace: str, names: tuple[str, ...], as_json: bool, **kw: Any) -> None:
    """Reserve project NAMES under NAMESPACE: the index serves them only from the registry.

    A reserved name is never taken from an upstream index, even before anything is published
    under it, so a public package of that name cannot be installed by mistake (dependency
    confusion). Names are compared after PEP 503 normalization (Feature_Kit = feature-kit). The
    reservation is stored in the registry, so every index server in front of it agrees.
    """
    results = reserve(namespace, list(names), session=session_from(kw))
    if as_json:
        emit_json({"reserved": [r.to_json() for r in results]})
        return
    for result in results:
        state = "reserved" if result.created else "already reserved"
        click.echo(f"{state}: {result.project} ({result.reference})")
