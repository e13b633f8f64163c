"""The ``mloci`` command line: a click group over :mod:`mloci.ops`, one module per command."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

import click

from mloci.cli._output import printable
from mloci.cli.app import cli
from mloci.errors import EXIT_INTERRUPTED, BundleInvalidError, MlociError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; the one place mloci errors become messages and exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        code = cli.main(
            args=list(argv) if argv is not None else None, prog_name="mloci", standalone_mode=False
        )
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("mloci: interrupted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("mloci: interrupted; nothing was left half-written", err=True)
        return EXIT_INTERRUPTED
    except MlociError as exc:
        if debug:
            traceback.print_exc()
        # Messages may quote what a registry or an artifact said: escape it before it reaches the terminal.
        click.echo(printable(f"mloci: error: {exc}"), err=True)
        if isinstance(exc, BundleInvalidError) and debug:
            for problem in exc.problems:
                click.echo(printable(f"  {problem}"), err=True)
        return exc.exit_code
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(
            printable(
                f"mloci: internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)"
            ),
            err=True,
        )
        return 1


def entry() -> None:
    sys.exit(main())


__all__ = ["cli", "entry", "main"]
