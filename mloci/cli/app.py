"""The top-level ``mloci`` group; each command lives in its own module."""

from __future__ import annotations

import importlib

import click

from mloci import __version__
from mloci.cli.examples import add_examples

EPILOG = """\b
Examples:
  $ mloci init ./churn-model && mloci validate ./churn-model
  $ mloci push ./churn-model registry.example.com/ml/churn-model
  $ mloci pull registry.example.com/ml/churn-model:1.0.0 -o ./model

\b
Exit codes:
  0  success              5  authentication
  1  other error          6  integrity (digest, size, unsafe content)
  2  usage                7  conflict (immutable version exists)
  3  invalid bundle       8  registry unreachable
  4  not found            9  registry protocol error
                        10  not supported by the registry
130  interrupted        11  refused by a policy
143  terminated         12  contract not met (test, check)

\b
References: [registry/]repository[:tag][@sha256:…]. Without a registry, names go to
$MLOCI_REGISTRY when set, else to the local store in $MLOCI_HOME.
"""


# Command name → "module:function". Modules load only when their command runs (or --help lists
# them), so `mloci pull` does not pay for importing what `mloci push` needs.
COMMANDS = {
    "init": "mloci.cli.init:init_command",
    "validate": "mloci.cli.validate:validate_command",
    "push": "mloci.cli.push:push_command",
    "pull": "mloci.cli.pull:pull_command",
    "inspect": "mloci.cli.inspect:inspect_command",
    "login": "mloci.cli.login:login_command",
    "logout": "mloci.cli.login:logout_command",
    "doctor": "mloci.cli.doctor:doctor_command",
    "tag": "mloci.cli.lifecycle:tag_command",
    "promote": "mloci.cli.lifecycle:promote_command",
    "history": "mloci.cli.lifecycle:history_command",
    "rollback": "mloci.cli.lifecycle:rollback_command",
    "copy": "mloci.cli.lifecycle:copy_command",
    "export": "mloci.cli.archive:export_command",
    "import": "mloci.cli.archive:import_command",
    "ls": "mloci.cli.lifecycle:ls_command",
    "diff": "mloci.cli.lifecycle:diff_command",
    "gc": "mloci.cli.lifecycle:gc_command",
    "fsck": "mloci.cli.fsck:fsck_command",
    "policy": "mloci.cli.policy:policy_group",
    "image": "mloci.cli.image:image_group",
    "keygen": "mloci.cli.trust:keygen_command",
    "sign": "mloci.cli.trust:sign_command",
    "verify": "mloci.cli.trust:verify_command",
    "verify-bundle": "mloci.cli.trust:verify_bundle_command",
    "wheel": "mloci.cli.wheel:wheel_group",
    "index": "mloci.cli.index:index_group",
    "serve": "mloci.cli.serve:serve_command",
    "sbom": "mloci.cli.attest:sbom_command",
    "attest": "mloci.cli.attest:attest_command",
    "verify-attestation": "mloci.cli.attest:verify_attestation_command",
    "attach": "mloci.cli.attest:attach_command",
    "discover": "mloci.cli.attest:discover_command",
    "test": "mloci.cli.contract:test_command",
    "check": "mloci.cli.contract:check_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, _, attr = COMMANDS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return add_examples(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="mloci")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """mloci: package ML models as OCI artifacts; push, pull and inspect them in any OCI registry."""
