"""mloci index serve: listen errors, an unreachable registry, and whose credentials reach the registry."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import urllib3
from auth_fixtures import TokenRegistry
from helpers import Registry, Runner
from pydists import running_index, running_pypiserver, write_wheel
from test_index import CLI, free_port, fresh_venv, imported, run, tool_env, twine, upload_fields

from mloci.pyindex.app import IndexConfig, create_app

# -- listening ---------------------------------------------------------------------------------------


def test_a_port_in_use_is_one_line_and_exit_code_2(registry: Registry, mloci: Runner) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = mloci("index", "serve", "--registry", registry.host, "--port", str(port))
    assert done.exit_code == 2, done
    assert done.stderr.startswith(f"mloci: error: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in done.stderr and "--port" in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.parametrize("host", ["bad..host", "192.0.2.1"])
def test_a_host_that_is_not_ours_is_one_line_and_exit_code_2(
    registry: Registry, mloci: Runner, host: str
) -> None:
    done = mloci("index", "serve", "--registry", registry.host, "--host", host, "--port", "0")
    assert done.exit_code == 2, done
    assert done.stderr.startswith(f"mloci: error: cannot listen on {host!r}") or done.stderr.startswith(
        f"mloci: error: cannot listen on {host}:0"
    )
    assert done.stderr.count("\n") == 1


def test_an_unreachable_registry_is_a_503_never_an_empty_list(http: urllib3.PoolManager) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with running_index(create_app(IndexConfig(registry=f"127.0.0.1:{port}", namespace="py"))) as server:
        listing = http.request("GET", server.simple)
        page = http.request("GET", f"{server.simple}featurekit/")
    for response in (listing, page):
        text = response.data.decode()
        assert response.status == 503, text
        assert "cannot connect to registry" in text and text.count("\n") == 1


# -- credentials -------------------------------------------------------------------------------------


def test_anonymous_uploads_never_use_the_servers_credentials(
    token_registry: TokenRegistry,
    http: urllib3.PoolManager,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    registry = token_registry.registry
    monkeypatch.setenv("MLOCI_USERNAME", "alice")  # the server's own credentials may push
    monkeypatch.setenv("MLOCI_PASSWORD", token_registry.users["alice"])
    wheel = write_wheel(tmp_path / "dist")
    with running_index(create_app(IndexConfig(registry=registry.host, namespace="py"))) as server:
        anonymous = http.request("POST", f"{server.url}/", fields=upload_fields(wheel))
        assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        assert http.request("GET", f"{server.simple}featurekit/").status == 404  # nothing was published
        alice = urllib3.make_headers(basic_auth=f"alice:{token_registry.users['alice']}")
        signed = http.request("POST", f"{server.url}/", fields=upload_fields(wheel), headers=alice)
        assert signed.status == 200, signed.data
        # Anonymous reads still act with the server's credentials (unless --require-auth).
        assert http.request("GET", f"{server.simple}featurekit/").status == 200

    config = IndexConfig(registry=registry.host, namespace="py", require_auth=True)
    with running_index(create_app(config)) as server:
        for url in (server.simple, f"{server.simple}featurekit/"):
            refused = http.request("GET", url)
            assert refused.status == 401 and b"requires credentials" in refused.data
        assert http.request("GET", f"{server.simple}featurekit/", headers=alice).status == 200
        upload = http.request("POST", f"{server.url}/", fields=upload_fields(wheel))
        assert upload.status == 401 and b"requires credentials" in upload.data


def test_credentials_never_appear_in_the_server_log(
    token_registry: TokenRegistry, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    registry = token_registry.registry
    alice = token_registry.users["alice"]
    wrong = "Wr0ng-secret-passw0rd"
    upstream_token = "Upstr3am-t0ken"
    stack = contextlib.ExitStack()
    secrets = [alice, wrong, upstream_token]
    secrets += [
        base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in (("alice", alice), ("alice", wrong))
    ]
    port = free_port()
    pypi = stack.enter_context(running_pypiserver(tmp_path / "pypi"))
    write_wheel(pypi.packages, "publickit", "1.0")
    upstream = pypi.simple.replace("http://", f"http://ci:{upstream_token}@")
    args = [sys.executable, "-c", CLI, "index", "serve", "--registry", registry.host, "--namespace", "py"]
    process = subprocess.Popen(
        [*args, "--port", str(port), "--log-level", "debug", "--upstream", upstream],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    env = tool_env(tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http.request("GET", f"{url}/")
                break
            except urllib3.exceptions.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        files = [write_wheel(tmp_path / "dist")]
        assert twine(files, f"{url}/", env, auth=("alice", wrong)).returncode != 0
        uploaded = twine(files, f"{url}/", env, auth=("alice", alice))
        assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
        python = fresh_venv(tmp_path / "venv", env, with_pip=False)
        pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--index-url"]
        run([*pip, f"http://alice:{alice}@127.0.0.1:{port}/simple/", "featurekit"], env)
        assert imported(python, env) == "0.1.3 42"
        run([*pip, f"http://alice:{wrong}@127.0.0.1:{port}/simple/", "featurekit"], env, check=False)
        run([*pip, f"http://alice:{alice}@127.0.0.1:{port}/simple/", "publickit"], env)  # from upstream
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
        stack.close()
    log = stdout + stderr
    assert "/simple/featurekit/" in log and "/upstream/publickit/" in log  # the access log is there…
    for secret in secrets:
        assert secret not in log  # …but no password or Authorization value


# -- verifying what pip downloaded against a signed release ---------------------------------------


def test_a_pip_download_verifies_against_the_signed_release(
    registry: Registry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented path (docs/wheels.md, "Verifying a download"): PEP 740 needs Sigstore
    certificates, mloci signs releases with keys, so the check goes through the release manifest."""
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "")
    monkeypatch.chdir(tmp_path)
    wheel = write_wheel(tmp_path / "dist")
    assert mloci("wheel", "push", wheel, f"{registry.host}/py").exit_code == 0
    assert mloci("keygen", "--allow-unencrypted", "--output-key-prefix", "team").exit_code == 0
    release = f"{registry.host}/py/featurekit:0.1.3"
    assert mloci("sign", release, "--key", "team.key").exit_code == 0

    env = tool_env(tmp_path)
    with running_index(create_app(IndexConfig(registry=registry.host, namespace="py"))) as server:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", "dl"]
        run([*pip, "--index-url", server.simple, "featurekit==0.1.3"], env)
    verified = mloci("verify", release, "--key", "team.pub", "--json")
    assert verified.exit_code == 0, verified.stderr
    digest = json.loads(verified.stdout)["digest"]
    pulled = mloci("wheel", "pull", f"{registry.host}/py/featurekit@{digest}", "-d", "signed")
    assert pulled.exit_code == 0, pulled.stderr
    assert (tmp_path / "dl" / wheel.name).read_bytes() == (tmp_path / "signed" / wheel.name).read_bytes()
