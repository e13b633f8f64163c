"""``mloci index``: serve the registry's Python projects as a package index for pip, uv and twine."""

from __future__ import annotations

from typing import Any

import click

from mloci.cli.options import registry_options, store_options
from mloci.errors import UsageError


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
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@registry_options
def serve_command(
    registry: str, namespace: str, host: str, port: int, read_only: bool, log_level: str, **kw: Any
) -> None:
    """Serve PEP 503/691 simple pages at /simple/ and take twine uploads at /.

    \b
      pip install --index-url http://HOST:PORT/simple/ PROJECT
      twine upload --repository-url http://HOST:PORT/ dist/*

    Credentials pip or twine send (Basic) are used for the registry; requests without any use
    the server's own (mloci login, docker config, MLOCI_USERNAME/MLOCI_PASSWORD). Anyone who can
    reach the server acts with those: keep the default 127.0.0.1, or use --read-only.
    """
    try:
        from mloci.pyindex.app import IndexConfig, serve  # noqa: PLC0415  (optional dependencies)
    except ImportError as exc:
        raise UsageError(
            f"the index server needs {exc.name or 'starlette and uvicorn'}", hint="pip install 'mloci[index]'"
        ) from None
    config = IndexConfig(
        registry=registry, namespace=namespace, options=store_options(kw), read_only=read_only
    )
    config.check()
    serve(config, host=host, port=port, log_level=log_level)
