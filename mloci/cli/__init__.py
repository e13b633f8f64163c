"""The ``mloci`` command line: a click group over :mod:`mloci.ops`, one module per command."""

from __future__ import annotations

import gc
import sys
import traceback
from collections.abc import Sequence

import click

from mloci.cli._output import emit_error, printable
from mloci.cli.app import cli
from mloci.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, BundleInvalidError, MlociError
from mloci.interrupts import Terminated, handle_signals


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; the one place mloci errors become messages and exit codes.

    Every error is one line on stderr; with ``--json`` it is also one object on stdout,
    ``{"error": {"message", "hint", "exitCode"}}``, whatever the command, so CI can parse it.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    with handle_signals():
        return _run(args)


def _run(args: list[str]) -> int:
    debug = "--debug" in args
    as_json = "--json" in (args[: args.index("--")] if "--" in args else args)
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        code = cli.main(args=args, prog_name="mloci", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        if as_json:
            emit_error(exc.format_message(), None, exc.exit_code)
        return exc.exit_code
    except Terminated:
        click.echo("mloci: terminated (SIGTERM); nothing was left half-written", err=True)
        if as_json:
            emit_error("terminated (SIGTERM)", None, EXIT_TERMINATED)
        return EXIT_TERMINATED
    except click.exceptions.Abort:
        click.echo("mloci: interrupted", err=True)
        if as_json:
            emit_error("interrupted", None, EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("mloci: interrupted; nothing was left half-written", err=True)
        if as_json:
            emit_error("interrupted; nothing was left half-written", None, EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except MlociError as exc:
        if debug:
            traceback.print_exc()
        # Messages may quote what a registry or an artifact said: escape it before it reaches the terminal.
        click.echo(printable(f"mloci: error: {exc}"), err=True)
        problems = exc.problems if isinstance(exc, BundleInvalidError) else ()
        if debug:
            for problem in problems:
                click.echo(printable(f"  {problem}"), err=True)
        if as_json:
            emit_error(exc.message, exc.hint, exc.exit_code, problems)
        return exc.exit_code
    except Exception as exc:
        if debug:
            traceback.print_exc()
        message = f"internal error: {type(exc).__name__}: {exc}"
        click.echo(printable(f"mloci: {message} (rerun with --debug and report it)"), err=True)
        if as_json:
            emit_error(message, "rerun with --debug and report it", 1)
        return 1


def entry() -> None:
    code = main()
    # The process ends here: skip the interpreter's final garbage collections, which walk every
    # object still alive (a push of 100,000 files leaves a few hundred thousand) for nothing.
    gc.freeze()
    sys.exit(code)


__all__ = ["cli", "entry", "main"]
