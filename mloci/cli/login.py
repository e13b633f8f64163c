from __future__ import annotations

import sys
from typing import Any

import click

from mloci.cli._output import emit_json
from mloci.cli.options import json_option, registry_options, store_options
from mloci.errors import UsageError
from mloci.ops.login import login, logout


@click.command("login")
@click.argument("registry")
@click.option("-u", "--username", help="User name (prompted for when omitted on a terminal).")
@click.option("--password-stdin", is_flag=True, help="Read the password or token from standard input.")
@registry_options
@json_option
def login_command(
    registry: str, username: str | None, password_stdin: bool, as_json: bool, **kw: Any
) -> None:
    """Log in to REGISTRY and store the credentials in the docker config (or its credential helper).

    There is deliberately no --password option: secrets on command lines end up in shell
    history and CI logs. Use --password-stdin, the prompt, or MLOCI_USERNAME/MLOCI_PASSWORD.
    """
    options = store_options(kw)
    if password_stdin:
        if not username:
            raise UsageError("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise UsageError("no terminal to prompt on", hint="use --username and --password-stdin")
        username = username or click.prompt("Username")
        password = click.prompt("Password", hide_input=True)
    where = login(registry, username or "", password, options=options)
    if as_json:
        emit_json({"registry": registry, "username": username, "storedIn": where})
        return
    click.echo(f"Login succeeded; credentials stored in {where}")


@click.command("logout")
@click.argument("registry")
@json_option
def logout_command(registry: str, as_json: bool) -> None:
    """Remove the stored credentials for REGISTRY."""
    removed = logout(registry)
    if as_json:
        emit_json({"registry": registry, "removed": removed})
        return
    if removed:
        click.echo(f"Removed login credentials for {registry}")
    else:
        click.echo(f"Not logged in to {registry}")
