"""Contract commands: ``mloci test`` (the bundle's declared tests) and ``mloci check`` (this environment)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mloci.cli._output import emit_json, error_json, printable
from mloci.cli.options import download_options, json_option, registry_options, session_from
from mloci.errors import ContractError, UsageError
from mloci.ops.refs import parse_reference

if TYPE_CHECKING:
    from mloci.bundle.manifest import BundleManifest
    from mloci.contract.environment import CheckReport
    from mloci.contract.run import ContractReport
    from mloci.store import Session


def _render_tests(report: ContractReport) -> None:
    width = max(len(r.name) for r in report.results)
    for result in report.results:
        mark = "PASS" if result.passed else "FAIL"
        click.echo(printable(f"{mark}  {result.name:<{width}}  {result.kind:<9}  {result.detail}"))


@click.command("test")
@click.argument("target", metavar="BUNDLE_DIR|REF")
@click.option("--only", multiple=True, metavar="NAME", help="Run only the test of this name. Repeatable.")
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Let pickled scikit-learn/joblib models load. Unpickling runs code from the bundle.",
)
@click.option(
    "--verify-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="REF only: pull only when a signature by this public key binds the digest.",
)
@click.option(
    "--attach",
    is_flag=True,
    help="REF only: sign the results (in-toto test-result v0.1) with --key and attach them to the digest.",
)
@click.option(
    "--key", type=click.Path(dir_okay=False, path_type=Path), help="Private key (PEM) for --attach."
)
@registry_options
@download_options
@json_option
def test_command(
    target: str,
    only: tuple[str, ...],
    trust_pickle: bool,
    verify_key: Path | None,
    attach: bool,
    key: Path | None,
    as_json: bool,
    **kw: Any,
) -> None:
    """Run the tests a bundle's manifest declares: golden outputs, signature, latency, commands.

    BUNDLE_DIR is tested in place; a REF is pulled (every byte verified) into a temporary
    directory first. 'command' tests run programs from the bundle, and
    --trust-pickle lets a pickled model run code: use both only on bundles you trust.

    \b
    Examples:
      mloci test examples/churn-model
      mloci test registry.example.com/ml/churn-model:1.0.0 --json
      mloci test registry.example.com/ml/churn-model:1.0.0 --attach --key ci.key

    Exits 0 when every test passes and 12 when one fails; each failure names the output,
    the element and how far off it is.
    """
    from mloci.contract.run import run_reference_tests, run_tests  # noqa: PLC0415  (numpy)

    if attach and key is None:
        raise UsageError("--attach needs --key (the private key that signs the results)")
    password = _key_password(key) if attach and key is not None else None  # asked before the tests run
    session = session_from(kw)
    if Path(target).is_dir():
        if attach or verify_key:
            raise UsageError(
                "--attach and --verify-key need a reference", hint="push the bundle, then test REF"
            )
        report = run_tests(Path(target), trust_pickle=trust_pickle, only=only)
    else:
        report = run_reference_tests(
            parse_reference(target),
            session=session,
            verify_key=verify_key,
            trust_pickle=trust_pickle,
            only=only,
        )
    attached = _attach(report, key, password, session) if attach and key is not None else None
    names = ", ".join(r.name for r in report.failures)
    failed = f"{len(report.failures)} of {len(report.results)} tests of {report.name} {report.version} failed: {names}"
    if as_json:
        # A failure carries the same "error" object every command prints with --json when it fails.
        error = error_json(failed, None, ContractError.exit_code) if not report.passed else {}
        emit_json({**report.to_json(), **({"attached": attached} if attached else {}), **error})
    else:
        _render_tests(report)
        if attached:
            click.echo(f"attached signed results: {attached['attestation']}", err=True)
    if not report.passed:
        click.echo(printable(f"mloci: error: {failed}"), err=True)
        raise click.exceptions.Exit(ContractError.exit_code)
    if not as_json:
        click.echo(f"{report.name} {report.version}: {len(report.results)} tests passed", err=True)


def _key_password(key: Path) -> bytes | None:
    """The passphrase of ``key``, checked by loading the key: a wrong one fails before any test runs."""
    from mloci.cli.trust import _passphrase  # noqa: PLC0415
    from mloci.ops.sign import is_encrypted, load_private_key  # noqa: PLC0415

    password = _passphrase(confirm=False) if is_encrypted(key) else None
    load_private_key(key, password)
    return password


def _attach(report: ContractReport, key: Path, password: bytes | None, session: Session) -> dict[str, Any]:
    from mloci.contract.evidence import attach_results  # noqa: PLC0415  (cryptography)

    return attach_results(report, key, password, session=session).to_json()


def render_check(report: CheckReport, *, as_json: bool) -> None:
    """Print a check report; exit 12 naming every mismatch when the environment does not match."""
    lines = "; ".join(f.line() for f in report.mismatches)
    refused = f"this environment does not meet {report.name} {report.version}'s contract: {lines}"
    if as_json:
        error = error_json(refused, None, ContractError.exit_code) if not report.passed else {}
        emit_json({**report.to_json(), **error})
    else:
        for finding in report.findings:
            click.echo(printable(f"{'ok  ' if finding.ok else 'FAIL'}  {finding.line()}"))
    if not report.passed:
        click.echo(printable(f"mloci: error: {refused}"), err=True)
        raise click.exceptions.Exit(ContractError.exit_code)


@click.command("check")
@click.argument("target", metavar="REF|BUNDLE_DIR")
@click.option(
    "--python",
    "python",
    metavar="PATH",
    help="Check this interpreter (e.g. a venv's bin/python) instead of the one running mloci.",
)
@registry_options
@json_option
def check_command(target: str, python: str | None, as_json: bool, **kw: Any) -> None:
    """Is this environment compatible with the bundle? Python, pinned packages, CPU, memory, GPU.

    Compares the Python version with dependencies.python and python, installed distributions
    with the pinned requirements, the CPU and memory limits (cgroup v2/v1, else the host) with
    runtime.cpu and runtime.memory, an accelerator when the bundle asks for one, and its lock
    file (pylock.toml, uv.lock, hashed requirements.txt). For a REF only the manifest and the lock
    file are read, never the weights.

    \b
    Examples:
      mloci check registry.example.com/ml/churn-model:1.0.0
      mloci check ./model --python /opt/venv/bin/python --json

    Exits 0 when compatible and 12 naming every mismatch on its own line.
    """
    from mloci.contract.environment import check_target  # noqa: PLC0415

    where = Path(target) if Path(target).is_dir() else parse_reference(target)
    report = check_target(where, python=python, session=session_from(kw))
    render_check(report, as_json=as_json)


def check_pulled(directory: Path) -> None:
    """``pull --check``: mismatches on stderr, one per line, then ContractError (exit 12)."""
    from mloci.bundle.load import load_bundle  # noqa: PLC0415
    from mloci.contract.environment import check_environment  # noqa: PLC0415

    report = check_environment(load_bundle(directory).manifest, bundle=str(directory), directory=directory)
    for finding in report.mismatches:
        click.echo(printable(f"mismatch: {finding.line()}"), err=True)
    if not report.passed:
        raise ContractError(
            f"this environment does not meet {report.name} {report.version}'s contract "
            f"({len(report.mismatches)} mismatches)",
            hint=f"the files stay in {directory}",
        )


def _safe(value: object) -> str:
    """A value from a registry, with control characters escaped before it reaches the terminal."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 50.0 in the stored JSON reads as 50
    return printable(value)


def contract_lines(manifest: BundleManifest | None) -> list[str]:
    """``inspect``'s view of the runtime contract and the declared tests of a bundle manifest."""
    if manifest is None:
        return []
    bundle = manifest.to_document()
    lines: list[str] = []
    runtime = bundle.get("runtime") if isinstance(bundle.get("runtime"), dict) else {}
    assert isinstance(runtime, dict)  # noqa: S101  (narrowed above)
    plain = [
        f"{key}: {_safe(runtime[key])}"
        for key in (
            "cpu",
            "memory",
            "accelerator",
            "latency_p50_ms",
            "latency_p99_ms",
            "max_concurrency",
            "batch_size",
        )
        if runtime.get(key) is not None
    ]
    if plain:
        lines.append("  " + "  ".join(plain))
    timeouts = runtime.get("timeouts")
    if isinstance(timeouts, dict) and timeouts:
        parts = [f"request {_safe(timeouts['request_ms'])} ms" if "request_ms" in timeouts else ""]
        parts.append(f"startup {_safe(timeouts['startup_s'])} s" if "startup_s" in timeouts else "")
        lines.append(f"  timeouts: {', '.join(p for p in parts if p)}")
    retries = runtime.get("retries")
    if isinstance(retries, dict) and retries:
        text = f"  retries: {_safe(retries.get('max_attempts'))} attempts"
        if retries.get("backoff_ms") is not None:
            text += f", backoff {_safe(retries['backoff_ms'])} ms"
        if retries.get("on"):
            text += f", on {', '.join(_safe(o) for o in retries['on'])}"
        lines.append(text)
    modes = runtime.get("failure_modes")
    if isinstance(modes, list) and modes:
        lines.append("  failure modes:")
        for mode in modes:
            if not isinstance(mode, dict):
                continue
            text = f"    {_safe(mode.get('name'))}"
            if mode.get("action"):
                text += f" → {_safe(mode['action'])}"
            if mode.get("fallback"):
                text += f" ({_safe(mode['fallback'])})"
            if mode.get("description"):
                text += f": {_safe(mode['description'])}"
            lines.append(text)
    if lines:
        lines.insert(0, "Runtime:")
    tests = bundle.get("tests")
    if isinstance(tests, list) and tests:
        names = ", ".join(
            f"{_safe(t.get('name'))} ({_safe(t.get('kind'))})" for t in tests if isinstance(t, dict)
        )
        lines.append(f"Tests:      {names}")
    return lines
