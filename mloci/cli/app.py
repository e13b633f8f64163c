"""The top-level ``mloci`` group; each command lives in its own module."""

from __future__ import annotations

import click

from mloci import __version__

EPILOG = """\b
Exit codes:
  0  success              5  authentication
  1  other error          6  integrity (digest, size, unsafe content)
  2  usage                7  conflict (immutable version exists)
  3  invalid bundle       8  registry unreachable
  4  not found            9  registry protocol error
130  interrupted

\b
References: [registry/]repository[:tag][@sha256:…]. Without a registry, names go to
$MLOCI_REGISTRY when set, else to the local store in $MLOCI_HOME.
"""


@click.group(
    epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="mloci")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """mloci: package ML models as OCI artifacts; push, pull and inspect them in any OCI registry."""


def _register() -> None:
    from mloci.cli import init, inspect, login, pull, push, validate  # noqa: F401  (commands register themselves)


_register()
