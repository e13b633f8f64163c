"""Authentication against real registries: htpasswd over TLS, and the distribution token flow."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from auth_fixtures import MakeTokenRegistry, TLSRegistry, TokenRegistry
from helpers import Result, Runner

ALICE = ("alice", "wonderland-secret")


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "docker"
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory / "config.json"


def login(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, host: str, user: str, password: str, *extra: str
) -> Result:
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    return mloci("login", host, "-u", user, "--password-stdin", *extra)


def test_login_over_verified_tls_then_push_and_pull(
    mloci: Runner,
    tls_registry: TLSRegistry,
    docker_config: Path,
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = tls_registry.registry.host
    ca = str(tls_registry.ca_file)
    result = login(mloci, monkeypatch, host, *ALICE, "--ca-file", ca)
    assert result.exit_code == 0, result.stderr
    assert "wonderland" not in result.stdout + result.stderr
    config = json.loads(docker_config.read_text())
    assert base64.b64decode(config["auths"][host]["auth"]).decode() == "alice:wonderland-secret"
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600

    pushed = mloci("push", bundle, f"{host}/ml/churn", "--ca-file", ca, "--json")
    assert pushed.exit_code == 0, pushed.stderr
    digest = json.loads(pushed.stdout)["digest"]
    monkeypatch.setenv("MLOCI_CA_FILE", ca)
    pulled = mloci("pull", f"{host}/ml/churn@{digest}", "-o", tmp_path / "out")
    assert pulled.exit_code == 0, pulled.stderr

    assert mloci("logout", host).exit_code == 0
    assert host not in json.loads(docker_config.read_text()).get("auths", {})
    anonymous = mloci("inspect", f"{host}/ml/churn@{digest}")
    assert anonymous.exit_code == 5 and "login" in anonymous.stderr


def test_wrong_password_is_refused_and_not_stored(
    mloci: Runner, tls_registry: TLSRegistry, docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = tls_registry.registry.host
    result = login(
        mloci, monkeypatch, host, "alice", "not-the-password", "--ca-file", str(tls_registry.ca_file)
    )
    assert result.exit_code == 5
    assert "not-the-password" not in result.stderr
    assert not docker_config.exists()


def test_tls_is_verified_by_default(
    mloci: Runner, tls_registry: TLSRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_USERNAME", "alice")
    monkeypatch.setenv("MLOCI_PASSWORD", "wonderland-secret")
    host = tls_registry.registry.host
    untrusted = mloci("inspect", f"{host}/ml/churn:1.0.0")
    assert untrusted.exit_code == 8 and "--ca-file" in untrusted.stderr
    insecure = mloci("inspect", f"{host}/ml/churn:1.0.0", "--insecure")
    assert insecure.exit_code == 4  # reached the registry, authenticated; the tag just does not exist
    assert "verification is disabled" in insecure.stderr


def test_env_credentials_for_ci(
    mloci: Runner, tls_registry: TLSRegistry, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_CA_FILE", str(tls_registry.ca_file))
    monkeypatch.setenv("MLOCI_USERNAME", "bob")
    monkeypatch.setenv("MLOCI_PASSWORD", "builder-secret")
    assert mloci("push", bundle, f"{tls_registry.registry.host}/ml/churn").exit_code == 0
    monkeypatch.setenv("MLOCI_PASSWORD", "wrong")
    wrong = mloci("push", bundle, f"{tls_registry.registry.host}/ml/churn")
    assert wrong.exit_code == 5 and "wrong" not in wrong.stderr


def test_credential_helper_is_used(
    mloci: Runner,
    tls_registry: TLSRegistry,
    docker_config: Path,
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = tls_registry.registry.host
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"if sys.argv[1] == 'get' and sys.stdin.read().strip() == {host!r}:\n"
        "    print(json.dumps({'Username': 'alice', 'Secret': 'wonderland-secret'}))\n"
        "else:\n    print('credentials not found'); sys.exit(1)\n"
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    docker_config.parent.mkdir(parents=True)
    docker_config.write_text(json.dumps({"credHelpers": {host: "fake"}}))
    result = mloci("push", bundle, f"{host}/ml/churn", "--ca-file", str(tls_registry.ca_file))
    assert result.exit_code == 0, result.stderr


def test_token_auth_push_and_pull(
    mloci: Runner,
    token_registry: TokenRegistry,
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = token_registry.registry.host
    monkeypatch.setenv("MLOCI_USERNAME", "alice")
    monkeypatch.setenv("MLOCI_PASSWORD", "wonderland-secret")
    pushed = mloci("push", bundle, f"{host}/ml/churn", "--json")
    assert pushed.exit_code == 0, pushed.stderr
    digest = json.loads(pushed.stdout)["digest"]
    scopes = {scope for r in token_registry.issuer.requests for scope in r.scopes}
    assert "repository:ml/churn:pull,push" in scopes
    pulled = mloci("pull", f"{host}/ml/churn@{digest}", "-o", tmp_path / "out")
    assert pulled.exit_code == 0, pulled.stderr


def test_missing_scope_is_a_clear_auth_error(
    mloci: Runner, token_registry: TokenRegistry, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_USERNAME", "bob")  # bob may only pull under ml/
    monkeypatch.setenv("MLOCI_PASSWORD", "builder-secret")
    result = mloci("push", bundle, f"{token_registry.registry.host}/ml/churn")
    assert result.exit_code == 5
    assert "do not grant" in result.stderr and "push" in result.stderr


def test_wrong_password_at_the_token_service(
    mloci: Runner, token_registry: TokenRegistry, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_USERNAME", "alice")
    monkeypatch.setenv("MLOCI_PASSWORD", "nope")
    result = mloci("push", bundle, f"{token_registry.registry.host}/ml/churn")
    assert result.exit_code == 5 and "rejected the credentials" in result.stderr


def test_anonymous_pull_with_anonymous_tokens(
    mloci: Runner,
    make_token_registry: MakeTokenRegistry,
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = make_token_registry(anonymous_pull=True)
    host = reg.registry.host
    monkeypatch.setenv("MLOCI_USERNAME", "alice")
    monkeypatch.setenv("MLOCI_PASSWORD", "wonderland-secret")
    digest = json.loads(mloci("push", bundle, f"{host}/ml/churn", "--json").stdout)["digest"]
    monkeypatch.delenv("MLOCI_USERNAME")
    monkeypatch.delenv("MLOCI_PASSWORD")
    pulled = mloci("pull", f"{host}/ml/churn@{digest}", "-o", tmp_path / "out")
    assert pulled.exit_code == 0, pulled.stderr
    denied = mloci("push", bundle, f"{host}/ml/other")
    assert denied.exit_code == 5


def test_expired_token_is_renewed_mid_operation(
    make_token_registry: MakeTokenRegistry, tmp_path: Path
) -> None:
    """A long transfer outlives its token: the client must fetch a fresh one and carry on."""
    from mloci.store.registry import RegistryStore
    from mloci.store.registry.auth import Credentials
    from mloci.types.blob import Blob

    reg = make_token_registry(token_lifetime=2)
    store = RegistryStore(reg.registry.host, credentials=Credentials(*ALICE))
    first = Blob.of_bytes("application/octet-stream", b"first")
    store.push_blob("ml/churn", first)
    time.sleep(3)
    second = Blob.of_bytes("application/octet-stream", b"second")
    store.push_blob("ml/churn", second)  # the cached token has expired by now
    assert store.has_blob("ml/churn", second.descriptor.digest)
    store.close()
    assert len([r for r in reg.issuer.requests if r.username == "alice"]) >= 2


def test_secrets_never_reach_debug_output(
    tls_registry: TLSRegistry, bundle: Path, tmp_path: Path, mloci_home: Path
) -> None:
    secret = "wonderland-secret-but-wrong"
    env = {
        **os.environ,
        "MLOCI_HOME": str(mloci_home),
        "MLOCI_USERNAME": "alice",
        "MLOCI_PASSWORD": secret,
        "MLOCI_CA_FILE": str(tls_registry.ca_file),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from mloci.cli import main; sys.exit(main(sys.argv[1:]))",
            "--debug",
            "push",
            str(bundle),
            f"{tls_registry.registry.host}/ml/churn",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 5
    assert "Traceback" in done.stderr  # --debug shows the trace...
    assert secret not in done.stdout + done.stderr  # ...but never the secret
    assert base64.b64encode(f"alice:{secret}".encode()).decode() not in done.stdout + done.stderr
