"""Bad input and odd servers end in one clear line with the documented exit code; statistics tell the truth."""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import Registry, Runner, run_json

from mloci.types import Digest


def file_digests(mloci: Runner, ref: str) -> dict[str, str]:
    files = run_json(mloci, "inspect", ref)["files"]
    assert isinstance(files, list)
    return {f["path"]: f["digest"] for f in files}


def one_clear_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in stderr and "Traceback" not in stderr, stderr
    return lines[0]


class _Server:
    """A plain HTTP server on 127.0.0.1 that answers every GET/HEAD with one canned response."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes = routes
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return None

            def _answer(self, body_too: bool) -> None:
                status, headers, body = server.routes.get(
                    self.path, (404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>")
                )
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if body_too:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

            def do_POST(self) -> None:
                self._answer(True)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def web_server() -> Iterator[_Server]:
    server = _Server({"/": (200, {"Content-Type": "text/html"}, b"<h1>hello</h1>")})
    yield server
    server.close()


# -- 1. a digest that names a file, not a manifest ------------------------------------------------


@pytest.mark.parametrize("path", ["model.onnx", "train.py", "metrics.json"])
def test_a_file_digest_is_not_a_manifest_for_any_command(
    mloci: Runner, bundle: Path, path: str, tmp_path: Path
) -> None:
    assert mloci("push", bundle).exit_code == 0
    blob = f"churn-model@{file_digests(mloci, 'churn-model:1.0.0')[path]}"
    for args in (
        ("inspect", blob),
        ("diff", blob, "churn-model:1.0.0"),
        ("copy", blob, "elsewhere:1"),
        ("sbom", blob),
        ("pull", blob, "-o", tmp_path / "out"),
    ):
        result = mloci(*args)
        assert result.exit_code == 6, (args, result.stderr)
        line = one_clear_line(result.stderr)
        assert f"{blob} is not a manifest" in line and "tag or a manifest digest" in line
    assert not (tmp_path / "out").exists()


def test_a_registry_serving_a_non_manifest_is_a_protocol_error(mloci: Runner) -> None:
    text = b"print('not a manifest')\n"
    digest = Digest.of(text)
    server = _Server(
        {
            "/v2/": (200, {"Docker-Distribution-API-Version": "registry/2.0"}, b"{}"),
            f"/v2/ml/churn/manifests/{digest}": (
                200,
                {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                text,
            ),
        }
    )
    try:
        result = mloci("inspect", f"{server.host}/ml/churn@{digest}")
    finally:
        server.close()
    assert result.exit_code == 9
    assert "is not a manifest (not JSON)" in one_clear_line(result.stderr)


# -- 2. hosts that are not registries, values that are not hosts ----------------------------------


def test_a_web_server_that_is_not_a_registry_is_a_protocol_error(
    mloci: Runner, web_server: _Server, bundle: Path, tmp_path: Path
) -> None:
    for args in (
        ("pull", f"{web_server.host}/ml/churn:1.0.0", "-o", tmp_path / "out"),
        ("inspect", f"{web_server.host}/ml/churn:1.0.0"),
        ("push", bundle, f"{web_server.host}/ml/churn"),
    ):
        result = mloci(*args)
        assert result.exit_code == 9, (args, result.stderr)
        line = one_clear_line(result.stderr)
        assert f"{web_server.host} is not an OCI registry" in line and "/v2/" in line


def test_a_registry_still_says_not_found(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    result = mloci("pull", f"{registry.host}/ml/nothing:1.0.0", "-o", tmp_path / "out")
    assert result.exit_code == 4, result.stderr


def test_a_port_out_of_range_is_a_usage_error(mloci: Runner, tmp_path: Path) -> None:
    for args in (
        ("pull", "127.0.0.1:99999/ml/churn:1.0.0", "-o", tmp_path / "out"),
        ("doctor", "127.0.0.1:99999"),
        ("doctor", "not a registry"),
    ):
        result = mloci(*args)
        assert result.exit_code == 2, (args, result.stderr)
        host = str(args[1]).partition("/")[0]
        assert f"registry host {host!r}" in one_clear_line(result.stderr)
        assert ("invalid port 99999" if "99999" in host else "invalid registry host") in result.stderr


@pytest.mark.parametrize("value", ["not a registry", "localhost:70000", "registry.example.com/Team"])
def test_a_bad_mloci_registry_is_a_usage_error_naming_it(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("MLOCI_REGISTRY", value)
    result = mloci("pull", "ml/churn:1.0.0", "-o", tmp_path / "out")
    assert result.exit_code == 2
    line = one_clear_line(result.stderr)
    assert "$MLOCI_REGISTRY" in line and repr(value) in line


def test_pull_without_tag_or_digest_is_a_usage_error_everywhere(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    assert mloci("push", bundle).exit_code == 0
    assert mloci("push", bundle, f"{registry.host}/ml/churn").exit_code == 0
    for repo in ("churn-model", f"{registry.host}/ml/churn"):
        result = mloci("pull", repo, "-o", tmp_path / "out")
        assert result.exit_code == 2, result.stderr
        assert "names no tag or digest" in one_clear_line(result.stderr)
        assert "mloci ls" in result.stderr


# -- 3. history of nothing -----------------------------------------------------------------------


def test_history_of_a_missing_repository_is_not_found(mloci: Runner, registry: Registry) -> None:
    for repo in ("nosuch", f"{registry.host}/ml/nosuch"):
        result = mloci("history", repo, "--env", "prod")
        assert result.exit_code == 4, result.stderr
        assert "not found" in one_clear_line(result.stderr)


# -- 4. statistics count what was sent, mounted and skipped ---------------------------------------


def test_first_push_to_an_empty_local_store_counts_every_blob_as_uploaded(
    mloci: Runner, bundle: Path
) -> None:
    first = run_json(mloci, "push", bundle)
    sizes = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    # 7 files (golden inputs and outputs included), mloci's normalized manifest and the config
    assert first["blobsUploaded"] == 9 and first["blobsSkipped"] == 0 and first["blobsMounted"] == 0
    assert isinstance(first["bytesUploaded"], int) and first["bytesUploaded"] > sizes
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.0.1"'))
    second = run_json(mloci, "push", bundle)
    assert second["blobsUploaded"] == 3 and second["blobsSkipped"] == 6  # manifest.json, its metadata, config


def test_copy_and_push_count_the_mounts_the_registry_did(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    first = run_json(mloci, "push", bundle, f"{registry.host}/ml/a")
    assert first["blobsUploaded"] == 9 and first["blobsMounted"] == 0

    def mounts(repo: str) -> int:
        return registry.requests_matching(rf'"POST /v2/ml/{repo}/blobs/uploads/\?mount=\S+ HTTP/1.1" 201')

    # Pushed again to another repository: the registry links the blobs it has, nothing is re-sent.
    again = run_json(mloci, "push", bundle, f"{registry.host}/ml/b")
    assert again["blobsMounted"] == mounts("b") == 9 and again["blobsUploaded"] == 0
    assert again["bytesUploaded"] == 0

    # Copied from the local store: the blob-location cache mounts them too, and copy says so.
    assert mloci("push", bundle).exit_code == 0
    copied = run_json(mloci, "copy", "churn-model:1.0.0", f"{registry.host}/ml/c")
    assert copied["blobsMounted"] == mounts("c") == 9
    assert copied["blobsCopied"] == 0 and copied["bytesCopied"] == 0
    text = mloci("copy", "churn-model:1.0.0", f"{registry.host}/ml/d")
    assert "mounted 9" in text.stderr


# -- 5. a refusal carries the registry's own reason -----------------------------------------------


@pytest.fixture
def read_only_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp("read-only-registry"))
    reg.config.write_text(
        reg.config.read_text().replace(
            "  maintenance:\n", "  maintenance:\n    readonly:\n      enabled: true\n"
        )
    )
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


def test_a_read_only_registry_says_why_it_refuses(
    mloci: Runner, read_only_registry: Registry, bundle: Path
) -> None:
    result = mloci("push", bundle, f"{read_only_registry.host}/ml/churn")
    assert result.exit_code == 9
    line = one_clear_line(result.stderr)
    assert "HTTP 405" in line and "Method not allowed" in line and "allowed: GET, HEAD" in line
    assert "read-only" in line


def test_plain_text_from_a_server_is_shown_without_control_characters(mloci: Runner) -> None:
    server = _Server(
        {
            "/v2/": (200, {}, b"{}"),
            "/v2/ml/churn/manifests/1.0.0": (418, {"Content-Type": "text/plain"}, b"teapot\x1b[31m\nhere"),
        }
    )
    try:
        result = mloci("inspect", f"{server.host}/ml/churn:1.0.0")
    finally:
        server.close()
    assert result.exit_code == 9
    line = one_clear_line(result.stderr)
    assert "HTTP 418" in line and "teapot\\x1b[31m here" in line and "\x1b" not in result.stderr


def test_image_volume_push_counts_what_it_sent(mloci: Runner, registry: Registry, bundle: Path) -> None:
    repo = f"{registry.host}/ml/churn-volume"
    first = run_json(mloci, "push", bundle, repo, "--format", "image-volume")
    blobs = first["blobsUploaded"]
    assert isinstance(blobs, int) and blobs >= 2 and first["blobsSkipped"] == 0
    assert registry.requests_matching(r'"PUT /v2/ml/churn-volume/blobs/uploads/') == blobs
    again = run_json(mloci, "push", bundle, repo, "--format", "image-volume")
    assert again["unchanged"] is True
    assert again["blobsUploaded"] == 0 and again["bytesUploaded"] == 0 and again["blobsSkipped"] == blobs
    assert registry.requests_matching(r'"PUT /v2/ml/churn-volume/blobs/uploads/') == blobs


def test_a_failing_policy_check_is_an_error_line_and_a_json_error(
    mloci: Runner, bundle: Path, tmp_path: Path
) -> None:
    assert mloci("push", bundle).exit_code == 0
    policy = tmp_path / "policy.yaml"
    policy.write_text('metrics: ["auc >= 0.99", "accuracy >= 0.5"]\n')
    text = mloci("policy", "check", "churn-model:1.0.0", "--policy", policy)
    assert text.exit_code == 11
    assert "FAIL" in text.stdout and "fails 1 policy rule" in one_clear_line(text.stderr)
    report = mloci("policy", "check", "churn-model:1.0.0", "--policy", policy, "--json")
    assert report.exit_code == 11
    value = json.loads(report.stdout)
    assert value["error"]["exitCode"] == 11 and "fails 1 policy rule" in value["error"]["message"]
    assert value["passed"] is False


# -- the same classes elsewhere -------------------------------------------------------------------


def test_inputs_that_were_silently_ignored_are_refused(mloci: Runner, bundle: Path) -> None:
    digest = run_json(mloci, "push", bundle)["digest"]
    wrong = "sha256:" + "0" * 64
    copy = mloci("copy", "churn-model:1.0.0", f"other@{wrong}")
    assert copy.exit_code == 2 and f"not the {wrong}" in one_clear_line(copy.stderr)
    assert mloci("copy", "churn-model:1.0.0", f"other@{digest}").exit_code == 0
    gc = mloci("gc", "churn-model:1.0.0", "--keep-last", "0", "--dry-run")
    assert gc.exit_code == 2 and "takes a repository" in one_clear_line(gc.stderr)
    sbom = mloci("sbom", "/nonexistent/bundle")
    assert sbom.exit_code == 4 and "no bundle directory /nonexistent/bundle" in one_clear_line(sbom.stderr)


def test_login_and_logout_speak_json(
    mloci: Runner, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    done = run_json(mloci, "login", registry.host, "-u", "ci", "--password-stdin")
    assert done["registry"] == registry.host and done["username"] == "ci"
    assert "s3cret" not in json.dumps(done)
    assert run_json(mloci, "logout", registry.host) == {"registry": registry.host, "removed": True}
    assert run_json(mloci, "logout", registry.host)["removed"] is False
