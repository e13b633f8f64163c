"""The contract against real parts: venvs built by uv, a real registry, signed results, policy gates."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from helpers import Registry, Runner
from pydists import write_wheel

from mloci.contract.evidence import TEST_RESULT_V01
from mloci.ops.attest import statement_of, verify_attestation
from mloci.ops.sign import generate_keypair
from mloci.types import Reference


def edit_manifest(bundle: Path, **changes: object) -> None:
    path = bundle / "manifest.json"
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def push(mloci: Runner, bundle: Path, repo: str) -> str:
    result = mloci("push", bundle, repo, "--json")
    assert result.exit_code == 0, result.stderr
    digest: str = json.loads(result.stdout)["digest"]
    return digest


# -- mloci check against real virtual environments --------------------------------------------


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    env.update(UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
    return env


def venv_with(tmp_path: Path, name: str, wheels: Path, *packages: str) -> Path:
    """A fresh venv (python -m venv) with ``packages`` installed by uv from local wheels only."""
    import uv

    env = _clean_env(tmp_path)
    target = tmp_path / name
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True, env=env)
    python = target / "bin" / "python"
    if packages:
        subprocess.run(
            [
                uv.find_uv_bin(),
                "pip",
                "install",
                "--python",
                str(python),
                "--no-index",
                "--find-links",
                str(wheels),
                *packages,
            ],
            check=True,
            env=env,
            capture_output=True,
        )
    return python


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    write_wheel(directory, "featurekit", "0.1.3")
    write_wheel(directory, "featurekit", "0.2.0")
    write_wheel(directory, "tinyplot", "1.0.0")
    return directory


@pytest.fixture
def pinned_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "pinned"
    bundle.mkdir()
    (bundle / "model.bin").write_bytes(b"\0" * 16)
    (bundle / "manifest.json").write_text(
        json.dumps(
            {
                "name": "pinned",
                "version": "1.0.0",
                "python": "{}.{}".format(*sys.version_info[:2]),
                "dependencies": {"python": ">=3.9", "requirements": ["featurekit==0.1.3", "tinyplot==1.0.0"]},
            }
        )
    )
    return bundle


def test_check_passes_in_a_matching_venv(
    mloci: Runner, tmp_path: Path, wheels: Path, pinned_bundle: Path
) -> None:
    python = venv_with(tmp_path, "good", wheels, "featurekit==0.1.3", "tinyplot==1.0.0")
    result = mloci("check", pinned_bundle, "--python", python, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["compatible"] is True and report["interpreter"].startswith(str(tmp_path / "good"))
    assert {f["subject"] for f in report["findings"]} >= {"python", "featurekit", "tinyplot"}


def test_check_names_a_missing_package_and_another_version_on_their_own_lines(
    mloci: Runner, tmp_path: Path, wheels: Path, pinned_bundle: Path
) -> None:
    python = venv_with(tmp_path, "drifted", wheels, "featurekit==0.2.0")
    result = mloci("check", pinned_bundle, "--python", python)
    assert result.exit_code == 12
    failing = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert failing == [
        "FAIL  featurekit: requires featurekit==0.1.3, found featurekit 0.2.0",
        "FAIL  tinyplot: requires tinyplot==1.0.0, found not installed",
    ]
    assert "does not meet pinned 1.0.0's contract" in result.stderr and "Traceback" not in result.stderr


def test_check_names_a_wrong_python(mloci: Runner, tmp_path: Path, wheels: Path, pinned_bundle: Path) -> None:
    edit_manifest(pinned_bundle, python="3.8", dependencies={"python": "<3.9"})
    python = venv_with(tmp_path, "bare", wheels)
    result = mloci("check", pinned_bundle, "--python", python, "--json")
    assert result.exit_code == 12
    report = json.loads(result.stdout)
    assert report["compatible"] is False and report["error"]["exitCode"] == 12
    mismatches = report["mismatches"]
    here = "{}.{}.{}".format(*sys.version_info[:3])
    assert mismatches == [
        f"python: requires <3.9 (dependencies.python), found {here}",
        f"python: requires 3.8 (python), found {here}",
    ]


def test_check_with_a_python_that_does_not_run_is_a_usage_error(
    mloci: Runner, tmp_path: Path, pinned_bundle: Path
) -> None:
    result = mloci("check", pinned_bundle, "--python", tmp_path / "no" / "python")
    assert result.exit_code == 2 and "cannot run" in result.stderr and "Traceback" not in result.stderr


def test_check_a_reference_reads_only_its_manifest_and_pull_check_gates_an_init_container(
    mloci: Runner, registry: Registry, tmp_path: Path, pinned_bundle: Path
) -> None:
    repo = f"{registry.host}/ml/pinned"
    edit_manifest(pinned_bundle, dependencies={"requirements": [f"click=={version('click')}"]})
    push(mloci, pinned_bundle, repo)
    assert mloci("check", f"{repo}:1.0.0").exit_code == 0
    ok = mloci("pull", f"{repo}:1.0.0", "-o", tmp_path / "ok", "--check")
    assert ok.exit_code == 0, ok.stderr

    edit_manifest(pinned_bundle, version="1.0.1", dependencies={"requirements": ["featurekit==0.1.3"]})
    push(mloci, pinned_bundle, repo)
    remote = mloci("check", f"{repo}:1.0.1")
    assert (
        remote.exit_code == 12
        and "featurekit: requires featurekit==0.1.3, found not installed" in remote.stdout
    )
    gated = mloci("pull", f"{repo}:1.0.1", "-o", tmp_path / "gated", "--check")
    assert gated.exit_code == 12
    assert "mismatch: featurekit: requires featurekit==0.1.3, found not installed" in gated.stderr
    assert (tmp_path / "gated" / "model.bin").is_file()  # the files stay for a look


# -- command tests -------------------------------------------------------------------------------


def test_command_tests_run_in_the_bundle_directory(
    tmp_path: Path, mloci: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "cmd"
    (bundle / "tests").mkdir(parents=True)
    (bundle / "model.bin").write_bytes(b"\0")
    (bundle / "tests" / "check.py").write_text(
        "import pathlib, sys\nassert pathlib.Path('model.bin').is_file()\nprint('fine')\n"
    )
    (bundle / "tests" / "fail.py").write_text(
        "import sys\nprint('about to fail')\nsys.stderr.write('accuracy 0.61 < 0.8 \\x1b[31mred\\n')\nsys.exit(3)\n"
    )
    (bundle / "tests" / "slow.py").write_text("import time\ntime.sleep(30)\n")
    (bundle / "tests" / "env.py").write_text("import os\nprint(os.environ.get('MLOCI_PASSWORD', 'unset'))\n")
    (bundle / "manifest.json").write_text(
        json.dumps(
            {
                "name": "cmd",
                "version": "1.0.0",
                "tests": [
                    {"name": "ok", "kind": "command", "run": ["python", "tests/check.py"]},
                    {"name": "bad", "kind": "command", "run": ["python", "tests/fail.py"]},
                    {"name": "slow", "kind": "command", "run": ["python", "tests/slow.py"], "timeout_s": 0.5},
                    {"name": "missing", "kind": "command", "run": ["no-such-program-anywhere"]},
                    {"name": "env", "kind": "command", "run": ["python3", "tests/env.py"]},
                ],
            }
        )
    )
    monkeypatch.setenv("MLOCI_PASSWORD", "s3cret-registry-token")
    result = mloci("test", bundle, "--json")
    assert result.exit_code == 12
    tests = {t["name"]: t for t in json.loads(result.stdout)["tests"]}
    assert tests["env"]["measurements"]["stdout"] == "unset\n"  # bundle code never sees the secrets
    assert tests["ok"]["passed"] and tests["ok"]["measurements"]["stdout"] == "fine\n"
    assert tests["bad"]["detail"] == "exit status 3: accuracy 0.61 < 0.8 \\x1b[31mred"
    assert tests["slow"]["detail"] == "stopped after 0.5 s (timeout_s)"
    assert tests["missing"]["detail"] == "no-such-program-anywhere: program not found"
    assert "\x1b" not in result.stdout


# -- a reference, signed results, and the policy that asks for them -------------------------------


@pytest.fixture
def ci_keys(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "keys").mkdir()
    return generate_keypair(tmp_path / "keys" / "ci", b"", allow_unencrypted=True)


def test_a_reference_is_pulled_and_tested(
    mloci: Runner, registry: Registry, bundle: Path, ci_keys: tuple[Path, Path]
) -> None:
    private, public = ci_keys
    repo = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, repo)
    result = mloci("test", f"{repo}:1.0.0", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["digest"] == digest and report["reference"] == f"{repo}:1.0.0@{digest}"
    assert [t["name"] for t in report["tests"] if t["passed"]] == ["golden", "signature", "latency"]
    unsigned = mloci("test", f"{repo}:1.0.0", "--verify-key", public)
    assert unsigned.exit_code == 6 and "Traceback" not in unsigned.stderr
    assert mloci("sign", f"{repo}:1.0.0", "--key", private).exit_code == 0
    signed = mloci("test", f"{repo}:1.0.0", "--verify-key", public)
    assert signed.exit_code == 0, signed.stderr


def test_signed_results_verify_and_satisfy_require_tests(
    mloci: Runner, registry: Registry, bundle: Path, ci_keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = ci_keys
    repo = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, repo)
    shutil.copy(public, tmp_path / "ci.pub")
    rules = tmp_path / "policy.yaml"
    rules.write_text("require: [tests]\ntests:\n  keys: [ci.pub]\n  latency: {p99_ms: {max: 20}}\n")

    before = mloci("policy", "check", f"{repo}:1.0.0", "--policy", rules, "--json")
    assert before.exit_code == 11
    assert "has no attestation" in json.loads(before.stdout)["rules"][0]["detail"]

    tested = mloci("test", f"{repo}:1.0.0", "--attach", "--key", private, "--json")
    assert tested.exit_code == 0, tested.stderr
    attached: dict[str, Any] = json.loads(tested.stdout)["attached"]
    assert attached["predicateType"] == TEST_RESULT_V01

    verified = mloci("verify-attestation", f"{repo}:1.0.0", "--key", public, "--type", TEST_RESULT_V01)
    assert verified.exit_code == 0, verified.stderr
    (attestation,) = verify_attestation(
        Reference.parse(f"{repo}:1.0.0"), public, predicate_type=TEST_RESULT_V01
    ).attestations
    statement = attestation.statement
    assert statement["subject"][0]["digest"] == {"sha256": digest.split(":")[1]}
    predicate = statement["predicate"]
    assert predicate["result"] == "PASSED" and predicate["failedTests"] == []
    assert predicate["passedTests"] == ["golden", "signature", "latency"]
    latency = next(t for t in predicate["mloci"]["tests"] if t["kind"] == "latency")
    assert latency["measurements"]["p99_ms"] > 0

    after = mloci("policy", "check", f"{repo}:1.0.0", "--policy", rules, "--json")
    assert after.exit_code == 0, after.stdout
    provenance = tmp_path / "provenance.yaml"
    provenance.write_text("require: [provenance]\n")
    # A signed test result is an in-toto attestation too, but it is not provenance.
    assert mloci("policy", "check", f"{repo}:1.0.0", "--policy", provenance).exit_code == 11
    assert "passing tests signed by ci.pub" in json.loads(after.stdout)["rules"][0]["detail"]

    strict = tmp_path / "strict.yaml"
    strict.write_text("require: [tests]\ntests:\n  keys: [ci.pub]\n  latency: {p99_ms: {max: 0.000001}}\n")
    too_slow = mloci("policy", "check", f"{repo}:1.0.0", "--policy", strict, "--json")
    assert too_slow.exit_code == 11
    assert "latency p99_ms" in json.loads(too_slow.stdout)["rules"][0]["detail"]

    other = generate_keypair(tmp_path / "other", b"", allow_unencrypted=True)[1]
    shutil.copy(other, tmp_path / "ci.pub")  # the policy now trusts another key
    untrusted = mloci("policy", "check", f"{repo}:1.0.0", "--policy", rules)
    assert untrusted.exit_code == 11


def test_failing_results_or_results_for_another_digest_do_not_count(
    mloci: Runner, registry: Registry, bundle: Path, ci_keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = ci_keys
    repo = f"{registry.host}/ml/churn"
    shutil.copy(public, tmp_path / "ci.pub")
    rules = tmp_path / "policy.yaml"
    rules.write_text("require: [tests]\ntests: {keys: [ci.pub]}\n")

    good = push(mloci, bundle, repo)
    assert mloci("test", f"{repo}:1.0.0", "--attach", "--key", private).exit_code == 0

    path = bundle / "tests" / "golden_outputs.json"
    expected = json.loads(path.read_text())
    expected["label"][0] = 1 - expected["label"][0]
    path.write_text(json.dumps(expected))
    edit_manifest(bundle, version="1.0.1")
    bad = push(mloci, bundle, repo)
    failing = mloci("test", f"{repo}:1.0.1", "--attach", "--key", private)
    assert failing.exit_code == 12 and "label[0]: expected" in failing.stdout

    refused = mloci("policy", "check", f"{repo}:1.0.1", "--policy", rules, "--json")
    assert refused.exit_code == 11
    assert "the attested run FAILED (golden)" in json.loads(refused.stdout)["rules"][0]["detail"]

    # The passing envelope of 1.0.0, copied onto 1.0.1 as a referrer, names the other digest.
    (passing,) = verify_attestation(
        Reference.parse(f"{repo}:1.0.0"), public, predicate_type=TEST_RESULT_V01
    ).attestations
    from mloci.ops.attach import attach_blob
    from mloci.types.blob import Blob
    from mloci.types.manifest import Descriptor
    from mloci.types.mediatype import DSSE_ENVELOPE

    fetched = Reference.parse(f"{repo}@{passing.digest}")
    manifest = json.loads(http_manifest(registry, "ml/churn", str(fetched.digest)))
    layer = manifest["layers"][0]
    data = http_blob(registry, "ml/churn", layer["digest"])
    attach_blob(
        Reference.parse(f"{repo}@{bad}"),
        Blob(Descriptor.of_bytes(DSSE_ENVELOPE, data), data=data),
        artifact_type=DSSE_ENVELOPE,
        annotations={"in-toto.io/predicate-type": TEST_RESULT_V01},
    )
    assert statement_of(json.loads(data))["subject"][0]["digest"]["sha256"] == good.split(":")[1]
    still = mloci("policy", "check", f"{repo}:1.0.1", "--policy", rules, "--json")
    assert still.exit_code == 11

    promoted = mloci("promote", f"{repo}:1.0.1", "--to", "prod", "--policy", rules)
    assert promoted.exit_code == 11 and "require: tests" in promoted.stderr
    assert mloci("promote", f"{repo}:1.0.0", "--to", "prod", "--policy", rules).exit_code == 0


def http_manifest(registry: Registry, repository: str, digest: str) -> bytes:
    import urllib3

    response = urllib3.request(
        "GET",
        f"http://{registry.host}/v2/{repository}/manifests/{digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert response.status == 200
    return response.data


def http_blob(registry: Registry, repository: str, digest: str) -> bytes:
    import urllib3

    response = urllib3.request("GET", f"http://{registry.host}/v2/{repository}/blobs/{digest}")
    assert response.status == 200
    return response.data


# -- the runtime contract in inspect and diff ----------------------------------------------------


def test_inspect_and_diff_show_timeouts_retries_and_failure_modes(mloci: Runner, bundle: Path) -> None:
    push(mloci, bundle, "churn-model")
    shown = mloci("inspect", "churn-model:1.0.0")
    assert shown.exit_code == 0, shown.stderr
    assert "  timeouts: request 50 ms, startup 10 s" in shown.stdout
    assert "  retries: 3 attempts, backoff 20 ms, on timeout, unavailable" in shown.stdout
    assert "    feature-missing → reject: a feature is null" in shown.stdout
    assert "Tests:      golden (golden), signature (signature), latency (latency)" in shown.stdout

    document = json.loads((bundle / "manifest.json").read_text())
    document["version"] = "1.0.1"
    document["runtime"]["retries"]["max_attempts"] = 5
    document["runtime"]["failure_modes"].append({"name": "\x1b[2Jevil", "action": "alert"})
    (bundle / "manifest.json").write_text(json.dumps(document))
    push(mloci, bundle, "churn-model")
    escaped = mloci("inspect", "churn-model:1.0.1")
    assert "    \\x1b[2Jevil → alert" in escaped.stdout and "\x1b" not in escaped.stdout
    changed = json.loads(mloci("diff", "churn-model:1.0.0", "churn-model:1.0.1", "--json").stdout)
    runtime = changed["metadata"]["runtime"]
    assert (
        runtime["left"]["retries"]["max_attempts"] == 3 and runtime["right"]["retries"]["max_attempts"] == 5
    )


# -- lock files written by uv, compared by check ---------------------------------------------------


def write_locks(work: Path, wheels: Path) -> dict[str, Path]:
    """uv.lock, pylock.toml (PEP 751) and a hashed requirements.txt, each written by the real uv."""
    import uv

    env = _clean_env(work)
    (work / "pyproject.toml").write_text(
        '[project]\nname = "serving"\nversion = "1.0.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["featurekit==0.1.3", "tinyplot==1.0.0"]\n'
    )
    (work / "req.in").write_text("featurekit==0.1.3\ntinyplot==1.0.0\n")
    links = ["--no-index", "--find-links", str(wheels)]
    commands = [
        ["lock", *links],
        ["export", "--format", "pylock.toml", *links, "-o", "pylock.toml"],
        ["pip", "compile", "--generate-hashes", *links, "req.in", "-o", "requirements.txt"],
    ]
    for args in commands:
        subprocess.run([uv.find_uv_bin(), *args], cwd=work, check=True, env=env, capture_output=True)
    return {name: work / name for name in ("uv.lock", "pylock.toml", "requirements.txt")}


def test_check_compares_the_bundles_lock_file(
    mloci: Runner, tmp_path: Path, wheels: Path, pinned_bundle: Path
) -> None:
    (tmp_path / "locking").mkdir()
    locks = write_locks(tmp_path / "locking", wheels)
    edit_manifest(pinned_bundle, dependencies={"python": ">=3.9"})  # only the lock pins packages
    good = venv_with(tmp_path, "good", wheels, "featurekit==0.1.3", "tinyplot==1.0.0")
    drifted = venv_with(tmp_path, "drifted", wheels, "featurekit==0.2.0")
    for name, lock in locks.items():
        for other in locks:
            (pinned_bundle / other).unlink(missing_ok=True)
        shutil.copy(lock, pinned_bundle / name)
        assert mloci("check", pinned_bundle, "--python", good).exit_code == 0, name
        result = mloci("check", pinned_bundle, "--python", drifted, "--json")
        assert result.exit_code == 12, name
        assert json.loads(result.stdout)["mismatches"] == [
            f"featurekit: requires featurekit==0.1.3 ({name}), found featurekit 0.2.0",
            f"tinyplot: requires tinyplot==1.0.0 ({name}), found not installed",
        ]


def test_push_records_which_lock_file_the_bundle_carries(
    mloci: Runner, tmp_path: Path, wheels: Path, pinned_bundle: Path
) -> None:
    (tmp_path / "locking").mkdir()
    shutil.copy(write_locks(tmp_path / "locking", wheels)["uv.lock"], pinned_bundle / "uv.lock")
    (pinned_bundle / "requirements.txt").write_text("featurekit==0.1.3\n")  # no hashes: not a lock
    edit_manifest(pinned_bundle, dependencies={"python": ">=3.9"})  # only the lock pins packages
    push(mloci, pinned_bundle, "pinned")
    layers = json.loads(mloci("inspect", "pinned:1.0.0", "--json").stdout)["manifest"]["layers"]
    roles = {
        layer["annotations"]["org.opencontainers.image.title"]: layer["annotations"].get(
            "dev.mloci.lock.format"
        )
        for layer in layers
    }
    assert roles["uv.lock"] == "uv" and roles["requirements.txt"] is None
    drifted = venv_with(tmp_path, "drifted", wheels, "featurekit==0.2.0", "tinyplot==1.0.0")
    remote = mloci("check", "pinned:1.0.0", "--python", drifted, "--json")  # fetches only the lock layer
    assert remote.exit_code == 12
    assert json.loads(remote.stdout)["mismatches"] == [
        "featurekit: requires featurekit==0.1.3 (uv.lock), found featurekit 0.2.0"
    ]


def test_the_sbom_lists_every_locked_package(
    mloci: Runner, tmp_path: Path, wheels: Path, pinned_bundle: Path
) -> None:
    (tmp_path / "locking").mkdir()
    shutil.copy(write_locks(tmp_path / "locking", wheels)["pylock.toml"], pinned_bundle / "pylock.toml")
    edit_manifest(pinned_bundle, dependencies={"requirements": ["featurekit==0.1.3"]})
    push(mloci, pinned_bundle, "pinned")
    for target in (pinned_bundle, "pinned:1.0.0"):
        result = mloci("sbom", target)
        assert result.exit_code == 0, result.stderr
        libraries = {
            c["purl"]: c.get("properties", [])
            for c in json.loads(result.stdout)["components"]
            if c["type"] == "library"
        }
        assert set(libraries) == {"pkg:pypi/featurekit@0.1.3", "pkg:pypi/tinyplot@1.0.0"}
        assert libraries["pkg:pypi/tinyplot@1.0.0"] == [{"name": "mloci:lock.file", "value": "pylock.toml"}]


def test_attach_with_an_encrypted_key_reads_the_passphrase_before_testing(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = generate_keypair(tmp_path / "enc", b"correct horse")
    repo = f"{registry.host}/ml/churn"
    push(mloci, bundle, repo)
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "wrong")
    wrong = mloci("test", f"{repo}:1.0.0", "--attach", "--key", private)
    assert wrong.exit_code == 2 and "PASS" not in wrong.stdout  # refused before any test ran
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "correct horse")
    assert mloci("test", f"{repo}:1.0.0", "--attach", "--key", private).exit_code == 0
    assert (
        mloci("verify-attestation", f"{repo}:1.0.0", "--key", public, "--type", TEST_RESULT_V01).exit_code
        == 0
    )
