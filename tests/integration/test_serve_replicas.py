"""``mloci serve`` as several replicas and as a gateway: a shared form secret, the init image, and how
a registry that is down (503) differs from one that does not answer (504).

Every server is a real ``mloci serve`` process in front of a real registry; the only fake is a TCP
server that accepts connections and never answers (no real registry does that on demand).
"""

from __future__ import annotations

import html
import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from catalog_helpers import SLOW, running_catalog, serving_process
from helpers import Registry, Runner

from mloci.catalog import CatalogConfig

PAGE = "/models/churn-model"
CALLER = ("alice", "any")  # an open registry accepts any caller; the forms still need some


def _secret_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _form_token(http: httpx.Client) -> tuple[str, str]:
    """The promote form's token and the ``mloci_csrf`` cookie a browser would hold."""
    page = http.get(PAGE)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "the model page has no promote form"
    return html.unescape(found[1]), http.cookies["mloci_csrf"]


def _post(url: str, token: str, cookie: str, version: str) -> httpx.Response:
    form = {"csrf": token, "to": "staging", "reference": version}
    headers = {"Cookie": f"mloci_csrf={cookie}"}
    return httpx.post(f"{url}{PAGE}/promote", data=form, headers=headers, auth=CALLER, timeout=SLOW)


def test_replicas_with_one_secret_file_accept_each_others_forms(
    registry: Registry, mloci: Runner, bundle: Path, tmp_path: Path
) -> None:
    assert mloci("push", bundle, f"{registry.host}/ml/churn-model", "-q").exit_code == 0
    secret = os.urandom(48).hex().encode()
    shared = _secret_file(tmp_path / "shared-secret", secret)
    other = _secret_file(tmp_path / "other-secret", os.urandom(48).hex().encode())
    common = ("--registry", registry.host, "--namespace", "ml")
    with (
        serving_process(*common, "--secret-file", str(shared)) as a,
        serving_process(*common, "--secret-file", str(shared)) as b,
        serving_process(*common, "--secret-file", str(other)) as c,
        httpx.Client(base_url=a, timeout=SLOW) as http,
    ):
        version = http.get("/api/v1/models/churn-model").json()["versions"][0]["version"]
        token, cookie = _form_token(http)
        # The load balancer sends the post to another replica: it signs with the same secret.
        accepted = _post(b, token, cookie, version)
        assert accepted.status_code == 200, accepted.text
        assert "now points at" in accepted.text
        # A replica with another secret refuses it, with the documented 403 page.
        refused = _post(c, token, cookie, version)
        assert refused.status_code == 403, refused.text
        assert "security token is missing or stale" in refused.text and "Traceback" not in refused.text
    assert secret.decode() not in accepted.text + refused.text


def test_a_secret_file_others_can_read_or_too_short_is_refused(
    mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = os.urandom(48).hex().encode()
    readable = _secret_file(tmp_path / "readable", secret, 0o644)
    short = _secret_file(tmp_path / "short", b"0123456789abcdef")
    missing = tmp_path / "missing"
    cases = {
        "readable by every user": ("--secret-file", str(readable)),
        "at least 32 are needed": ("--secret-file", str(short)),
        "No such file": ("--secret-file", str(missing)),
    }
    for expected, args in cases.items():
        result = mloci("serve", *args, "--port", "0")
        assert result.exit_code == 2, (expected, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert secret.decode() not in result.stderr + result.stdout
    # The environment variable names the file just as the option does.
    monkeypatch.setenv("MLOCI_SERVE_SECRET_FILE", str(readable))
    result = mloci("serve", "--port", "0")
    assert result.exit_code == 2 and "readable by every user" in result.stderr


def test_the_init_container_snippet_names_the_configured_image(
    registry: Registry, mloci: Runner, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mloci("push", bundle, f"{registry.host}/ml/churn-model", "-q").exit_code == 0
    image = "registry.example.com/tools/mloci:1.4"
    version_page = "/models/churn-model/versions/"
    monkeypatch.setenv("MLOCI_INIT_IMAGE", image)
    with serving_process("--registry", registry.host, "--namespace", "ml") as url:
        version = httpx.get(f"{url}/api/v1/models/churn-model", timeout=SLOW).json()["versions"][0]
        configured = httpx.get(f"{url}{version_page}{version['version']}", timeout=SLOW)
    monkeypatch.delenv("MLOCI_INIT_IMAGE")
    assert configured.status_code == 200, configured.text
    assert f"image: {image}\n" in configured.text and "Placeholder" not in configured.text

    # Without one: a placeholder nobody mistakes for an image, and a hint how to set it.
    config = CatalogConfig(registry=registry.host, namespace="ml")
    with running_catalog(config) as plain:
        unset = httpx.get(f"{plain.url}{version_page}{version['version']}", timeout=SLOW)
    assert "image: &lt;IMAGE WITH MLOCI&gt;\n" in unset.text and "--init-image REF" in unset.text
    assert "image: mloci\n" not in unset.text

    # From the operator, but escaped all the same.
    with running_catalog(config, init_image='evil"><script>alert(1)</script>') as odd:
        shown = httpx.get(f"{odd.url}{version_page}{version['version']}", timeout=SLOW)
    assert "<script>" not in shown.text
    assert "image: evil&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text

    refused = mloci("serve", "--init-image", "mloci:1\n  command: [sh]", "--port", "0")
    assert refused.exit_code == 2 and "--init-image" in refused.stderr


@contextmanager
def silent_server() -> Iterator[str]:
    """127.0.0.1:PORT that accepts every connection and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        server.close()


def _get_all(url: str) -> dict[str, httpx.Response]:
    paths = ("/models/churn-model", "/api/v1/models", "/simple/")
    return {path: httpx.get(url + path, timeout=SLOW) for path in paths}


def test_a_registry_that_never_answers_is_504_and_one_that_is_down_503(
    registry: Registry, mloci: Runner, bundle: Path
) -> None:
    with (
        silent_server() as host,
        serving_process(
            "--registry", host, "--namespace", "ml", "--plain-http", "--registry-timeout", "1"
        ) as url,
    ):
        stalled = _get_all(url)
        described = httpx.get(url + "/api/v1/openapi.json", timeout=SLOW).json()
    for path, response in stalled.items():
        assert response.status_code == 504, (path, response.text)
        assert response.headers["Retry-After"] == "5", path
        assert "timed out" in response.text and "Traceback" not in response.text
    assert stalled["/api/v1/models"].json()["errors"][0]["code"] == "REGISTRY_TIMEOUT"
    assert "Registry timed out" in stalled["/models/churn-model"].text
    answers = described["paths"]["/api/v1/models"]["get"]["responses"]
    assert "REGISTRY_TIMEOUT" in answers["504"]["description"] and "Retry-After" in answers["503"]["headers"]

    assert mloci("push", bundle, f"{registry.host}/ml/churn-model", "-q").exit_code == 0
    with serving_process("--registry", registry.host, "--namespace", "ml", "--refresh", "0") as url:
        assert httpx.get(url + "/models/churn-model", timeout=SLOW).status_code == 200
        registry.stop()
        down = _get_all(url)
    for path, response in down.items():
        assert response.status_code == 503, (path, response.text)
        assert response.headers["Retry-After"] == "5", path
        assert "Traceback" not in response.text
    assert down["/api/v1/models"].json()["errors"][0]["code"] == "REGISTRY_UNAVAILABLE"
    assert "Registry unavailable" in down["/models/churn-model"].text
