"""The index in front of an upstream: public projects pass through, private and reserved names never do.

The upstream is a real third-party index, pypiserver, on 127.0.0.1 with packages the tests build;
pip and uv are the real clients. Faults no real index produces on demand (a server that never
answers, malformed pages) come from a tiny local HTTP server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import urljoin

import pytest
import urllib3
from helpers import Registry, Runner
from pydists import (
    IndexServer,
    PypiServer,
    core_metadata,
    running_index,
    running_pypiserver,
    sha256_of,
    write_sdist,
    write_wheel,
)
from test_index import JSON_ACCEPT, fresh_venv, imported, run, tool_env

from mloci.client import Client
from mloci.errors import UsageError
from mloci.ops.wheel import push_distributions, read_release
from mloci.pyindex.app import IndexConfig, create_app
from mloci.python.artifact import Release
from mloci.store import RegistryStore
from mloci.types import Reference

# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def proxy(registry: Registry, pypi: PypiServer) -> Iterator[IndexServer]:
    config = IndexConfig(registry=registry.host, namespace="py", upstreams=(pypi.simple,), upstream_timeout=5)
    with running_index(create_app(config)) as server:
        yield server


def read_release_of(registry: Registry, repository: str, version: str) -> Release:
    store = RegistryStore(registry.host)
    try:
        release = read_release(store, Reference(registry.host, repository), version)
    finally:
        store.close()
    assert release is not None, f"{repository} {version} is not released"
    return release


def released(registry: Registry, repository: str, version: str) -> bool:
    try:
        read_release_of(registry, repository, version)
    except AssertionError:
        return False
    return True


def publish(registry: Registry, *paths: Path) -> None:
    push_distributions(list(paths), f"{registry.host}/py")


def pip_install(python: Path, index: str, env: dict[str, str], *args: str, check: bool = True) -> str:
    done = run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--index-url", index, *args],
        env,
        check=check,
    )
    return done.stdout + done.stderr


# -- dependency confusion ----------------------------------------------------------------------------


def test_a_private_project_wins_over_a_higher_public_version_with_pip_and_uv(
    registry: Registry, pypi: PypiServer, proxy: IndexServer, tmp_path: Path
) -> None:
    write_wheel(pypi.packages, version="99.0", value=666)  # the attacker's featurekit on the public index
    publish(registry, write_wheel(tmp_path / "dist", version="0.1.3"))
    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=False)
    pip_install(python, proxy.simple, env, "featurekit")
    assert imported(python, env) == "0.1.3 42"

    import uv

    uv_python = fresh_venv(tmp_path / "uv-venv", env, with_pip=False)
    uv_args = [uv.find_uv_bin(), "pip", "install", "--python", str(uv_python), "--index-url", proxy.simple]
    run([*uv_args, "featurekit"], env)
    assert imported(uv_python, env) == "0.1.3 42"
    assert pypi.requests("/featurekit") == 0  # upstream was never even asked about the name
    assert not any(p.startswith("/upstream/") for p in proxy.paths())


def test_a_private_name_without_a_compatible_file_never_falls_back_to_upstream(
    registry: Registry, pypi: PypiServer, proxy: IndexServer, tmp_path: Path
) -> None:
    write_wheel(pypi.packages, version="99.0")
    publish(registry, write_wheel(tmp_path / "dist", version="0.1.3", requires_python=">=9"))
    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=False)
    output = pip_install(python, proxy.simple, env, "featurekit", check=False)
    assert "No matching distribution found for featurekit" in output
    assert pypi.requests("/featurekit") == 0


def test_a_reserved_name_is_never_served_from_upstream(
    registry: Registry,
    pypi: PypiServer,
    proxy: IndexServer,
    http: urllib3.PoolManager,
    mloci: Runner,
    tmp_path: Path,
) -> None:
    write_wheel(pypi.packages, "secret-kit", "1.0")
    write_wheel(pypi.packages, "publickit", "1.0")
    reserved = mloci("index", "reserve", f"{registry.host}/py", "Secret_Kit", "--json")
    assert reserved.exit_code == 0, reserved.stderr
    assert json.loads(reserved.stdout)["reserved"][0]["project"] == "secret-kit"
    again = mloci("index", "reserve", f"{registry.host}/py", "secret.kit")
    assert again.exit_code == 0 and "already reserved: secret-kit" in again.stdout

    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=False)
    output = pip_install(python, proxy.simple, env, "Secret.Kit", check=False)
    assert "No matching distribution found for Secret.Kit" in output
    page = http.request("GET", f"{proxy.simple}secret-kit/", headers={"Accept": JSON_ACCEPT})
    assert page.status == 404 and b"private" in page.data
    # Not through the file URL either.
    refused = http.request("GET", f"{proxy.url}/upstream/secret-kit/secret_kit-1.0-py3-none-any.whl")
    assert refused.status == 404
    assert pypi.requests("/secret") == 0
    # Other names still come from upstream.
    pip_install(python, proxy.simple, env, "publickit")
    bad = mloci("index", "reserve", f"{registry.host}/py", "no such name")
    assert bad.exit_code == 2 and "not a valid Python project name" in bad.stderr
    with Client() as client:  # the Python API
        (result,) = client.reserve_projects(f"{registry.host}/py", ["Other.Kit"])
    assert (result.project, result.created) == ("other-kit", True)


def test_one_pip_install_resolves_a_private_package_with_a_public_dependency(
    registry: Registry, pypi: PypiServer, proxy: IndexServer, tmp_path: Path
) -> None:
    write_wheel(pypi.packages, "publicdep", "2.0")
    write_sdist(pypi.packages, "publicdep", "2.0")
    publish(registry, write_wheel(tmp_path / "dist", "appkit", "1.0", requires=("publicdep>=2",)))
    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=False)
    output = pip_install(python, proxy.simple, env, "appkit")
    assert "Successfully installed appkit-1.0 publicdep-2.0" in output
    assert "/packages/appkit/1.0/appkit-1.0-py3-none-any.whl" in proxy.paths()
    assert "/upstream/publicdep/publicdep-2.0-py3-none-any.whl" in proxy.paths()

    import uv

    uv_python = fresh_venv(tmp_path / "uv-venv", env, with_pip=False)
    uv_args = [uv.find_uv_bin(), "pip", "install", "--python", str(uv_python), "--index-url", proxy.simple]
    run([*uv_args, "appkit"], env)
    listed = run([uv.find_uv_bin(), "pip", "list", "--python", str(uv_python)], env).stdout
    assert "appkit" in listed and "publicdep" in listed


# -- pages and files from upstream -------------------------------------------------------------------


def test_upstream_pages_keep_hashes_in_both_forms_and_files_stream_verified(
    pypi: PypiServer, proxy: IndexServer, http: urllib3.PoolManager
) -> None:
    wheel = write_wheel(pypi.packages, "publickit", "1.0", requires_python=">=3.9")
    sdist = write_sdist(pypi.packages, "publickit", "1.1")
    page = f"{proxy.simple}publickit/"
    response = http.request("GET", page, headers={"Accept": JSON_ACCEPT})
    assert response.status == 200, response.data
    document = json.loads(response.data)
    assert document["name"] == "publickit" and document["versions"] == ["1.0", "1.1"]
    assert document["meta"]["api-version"] == "1.0"  # pypiserver's HTML gives no sizes
    files = {f["filename"]: f for f in document["files"]}
    assert files[wheel.name]["hashes"] == {"sha256": sha256_of(wheel)}
    assert files[sdist.name]["hashes"] == {"sha256": sha256_of(sdist)}
    for path in (wheel, sdist):
        fetched = http.request("GET", urljoin(page, files[path.name]["url"]))
        assert fetched.status == 200 and hashlib.sha256(fetched.data).hexdigest() == sha256_of(path)
    html = http.request("GET", page, headers={"Accept": "text/html"}).data.decode()
    assert f"{wheel.name}#sha256={sha256_of(wheel)}" in html
    assert "../../upstream/publickit/" in html and "127.0.0.1" not in html
    assert http.request("GET", f"{proxy.simple}nosuchproject/").status == 404
    listing = json.loads(http.request("GET", proxy.simple, headers={"Accept": JSON_ACCEPT}).data)
    assert {"name": "publickit"} in listing["projects"]


def test_upstream_pages_are_cached_briefly(
    registry: Registry, pypi: PypiServer, http: urllib3.PoolManager
) -> None:
    write_wheel(pypi.packages, "publickit", "1.0")
    config = IndexConfig(
        registry=registry.host, namespace="py", upstreams=(pypi.simple,), upstream_cache_seconds=3
    )
    with running_index(create_app(config)) as server:
        started = time.monotonic()
        for _ in range(3):
            assert http.request("GET", f"{server.simple}publickit/").status == 200
        if time.monotonic() - started < 3:  # a loaded machine may take longer than the cache lasts
            assert pypi.requests("GET /simple/publickit/", at_least=1) == 1
        time.sleep(3.2)
        assert http.request("GET", f"{server.simple}publickit/").status == 200
        assert pypi.requests("GET /simple/publickit/", at_least=2) >= 2


def test_an_upstream_file_that_does_not_match_its_page_is_refused(
    pypi: PypiServer,
    proxy: IndexServer,
    http: urllib3.PoolManager,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wheel = write_wheel(pypi.packages, "publickit", "1.0")
    page = json.loads(http.request("GET", f"{proxy.simple}publickit/", headers={"Accept": JSON_ACCEPT}).data)
    url = urljoin(f"{proxy.simple}publickit/", page["files"][0]["url"])
    write_wheel(tmp_path / "evil", "publickit", "1.0", value=666).replace(wheel)  # same name, other bytes
    server_log = logging.getLogger("uvicorn.error")  # configured when the server started: add to it now
    server_log.addHandler(caplog.handler)
    try:
        with pytest.raises(urllib3.exceptions.ProtocolError):
            http.request("GET", url)  # the connection ends short: never the whole, unverified file
    finally:
        server_log.removeHandler(caplog.handler)
    assert "does not match its page's sha256" in caplog.text  # one line in the server's log…
    assert not [r for r in caplog.records if r.exc_info]  # …and no traceback
    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=False)
    pip_install(python, proxy.simple, env, "publickit", check=False)
    done = run([str(python), "-c", "import publickit"], env, check=False)
    assert done.returncode != 0  # nothing was installed


def test_redirect_mode_sends_clients_to_the_upstream_file(
    registry: Registry, pypi: PypiServer, http: urllib3.PoolManager
) -> None:
    wheel = write_wheel(pypi.packages, "publickit", "1.0")
    config = IndexConfig(
        registry=registry.host, namespace="py", upstreams=(pypi.simple,), redirect_upstream_files=True
    )
    with running_index(create_app(config)) as server:
        moved = http.request("GET", f"{server.url}/upstream/publickit/{wheel.name}", redirect=False)
    assert moved.status == 302 and moved.headers["Location"] == f"{pypi.url}/packages/{wheel.name}"


# -- an upstream that fails -------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_upstream_is_a_502_with_the_reason(
    registry: Registry, http: urllib3.PoolManager
) -> None:
    upstream = f"http://user:s3cret@127.0.0.1:{closed_port()}/simple/"
    config = IndexConfig(registry=registry.host, namespace="py", upstreams=(upstream,))
    with running_index(create_app(config)) as server:
        response = http.request("GET", f"{server.simple}publickit/")
        listing = http.request("GET", server.simple)
    body = response.data.decode()
    assert response.status == 502 and "is unreachable" in body and "connection refused" in body, body
    assert "s3cret" not in body and body.count("\n") == 1
    assert listing.status == 502


def test_an_upstream_that_never_answers_is_a_502_within_the_timeout(
    registry: Registry, http: urllib3.PoolManager
) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are accepted by the kernel, then nothing is ever sent
    try:
        upstream = f"http://127.0.0.1:{silent.getsockname()[1]}/simple/"
        config = IndexConfig(
            registry=registry.host, namespace="py", upstreams=(upstream,), upstream_timeout=1
        )
        with running_index(create_app(config)) as server:
            started = time.monotonic()
            response = http.request("GET", f"{server.simple}publickit/")
            elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert response.status == 502 and b"timed out after 1 s" in response.data, response.data
    assert elapsed < 3


class _Dripping(BaseHTTPRequestHandler):
    """Answers at once, then sends its page one byte at a time: each read is quick, the page never ends."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            return

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_upstream_page_that_never_ends_is_a_502_within_the_timeout(
    registry: Registry, http: urllib3.PoolManager
) -> None:
    dripping = ThreadingHTTPServer(("127.0.0.1", 0), _Dripping)
    dripping.daemon_threads = True
    threading.Thread(target=dripping.serve_forever, daemon=True).start()
    try:
        upstream = f"http://127.0.0.1:{dripping.server_address[1]}/simple/"
        config = IndexConfig(
            registry=registry.host, namespace="py", upstreams=(upstream,), upstream_timeout=1
        )
        with running_index(create_app(config)) as server:
            started = time.monotonic()
            response = http.request("GET", f"{server.simple}publickit/")
            elapsed = time.monotonic() - started
    finally:
        dripping.shutdown()
        dripping.server_close()
    assert response.status == 502 and b"timed out after 1 s" in response.data, response.data
    assert elapsed < 3


class _Fixed(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, tuple[str, bytes]]] = {}

    def do_GET(self) -> None:
        content_type, body = self.pages.get(self.path, ("text/plain", b"no"))
        self.send_response(200 if self.path in self.pages else 404)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        (
            "application/vnd.pypi.simple.v1+json",
            b'{"meta": {"api-version": "1.0"}, "files": [',
            "malformed JSON",
        ),
        (
            "application/vnd.pypi.simple.v1+json",
            b'{"meta": {"api-version": "1.0"}, "files": {}}',
            "files is not a list",
        ),
        ("application/vnd.pypi.simple.v1+json", b'{"files": []}', "lacks meta.api-version"),
        (
            "application/vnd.pypi.simple.v1+json",
            b'{"meta": {"api-version": "2.0"}, "files": []}',
            "simple API version 2.0 is not supported",
        ),
        (
            "application/vnd.pypi.simple.v1+json",
            b'{"meta": {"api-version": "1.0"}, "files": [{"filename": "../x.whl", "url": "x", "hashes": {}}]}',
            "malformed filename",
        ),
        ("text/html", b'<html><a href="p-1.0.tar.gz#sha256=nothex">p</a></html>', "malformed sha256 hash"),
        ("text/html", b"\xff\xfe not utf-8", "is not UTF-8"),
        ("application/zip", b"PK", "not a simple API page"),
    ],
)
def test_a_malformed_upstream_page_is_a_clear_502(
    registry: Registry, http: urllib3.PoolManager, content_type: str, body: bytes, message: str
) -> None:
    handler = type("Handler", (_Fixed,), {"pages": {"/simple/publickit/": (content_type, body)}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        upstream = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        config = IndexConfig(registry=registry.host, namespace="py", upstreams=(upstream,))
        with running_index(create_app(config)) as index:
            response = http.request("GET", f"{index.simple}publickit/")
    finally:
        server.shutdown()
        server.server_close()
    text = response.data.decode()
    assert response.status == 502 and message in text and text.count("\n") == 1, text


@pytest.mark.parametrize(
    "url", ["ftp://example/simple/", "http://[::1/simple/", "https:///simple/", "pypi.org"]
)
def test_a_bad_upstream_url_is_a_usage_error(registry: Registry, mloci: Runner, url: str) -> None:
    done = mloci("index", "serve", "--registry", registry.host, "--upstream", url)
    assert done.exit_code == 2 and "is not an http(s) URL" in done.stderr, done


# -- caching upstream files in the registry ------------------------------------------------------------


def test_cached_upstream_files_keep_installs_working_when_the_upstream_is_down(
    registry: Registry, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    env = tool_env(tmp_path)
    config = IndexConfig(
        registry=registry.host,
        namespace="py",
        upstreams=(),
        upstream_timeout=2,
        cache_namespace="pypi-cache",
    )
    with running_pypiserver(tmp_path / "pypi") as pypi:
        wheel = write_wheel(pypi.packages, "publickit", "1.0")
        config = dataclasses.replace(config, upstreams=(pypi.simple,))
        app = create_app(config)
        with running_index(app) as server:
            python = fresh_venv(tmp_path / "venv", env, with_pip=False)
            pip_install(python, server.simple, env, "publickit")
            deadline = time.monotonic() + 30
            while not released(registry, "pypi-cache/publickit", "1.0"):
                assert time.monotonic() < deadline, "the file was not cached"
                time.sleep(0.2)
    cached = read_release_of(registry, "pypi-cache/publickit", "1.0")
    assert [(f.filename, f.sha256) for f in cached.files] == [(wheel.name, sha256_of(wheel))]
    assert not released(registry, "py/publickit", "1.0")  # the private namespace is untouched

    # pypiserver is gone now: a new server (no page cache) serves the page and file from the registry.
    with running_index(create_app(config)) as server:
        python = fresh_venv(tmp_path / "venv2", env, with_pip=False)
        output = pip_install(python, server.simple, env, "publickit")
        assert "Successfully installed publickit-1.0" in output
        unknown = http.request("GET", f"{server.simple}otherkit/")
        assert unknown.status == 502  # nothing cached for it: the upstream's failure, never an empty page


def test_the_cache_namespace_must_lie_apart(registry: Registry) -> None:
    for namespace in ("py", "py/cache", "/py/"):
        with pytest.raises(UsageError, match="must lie apart"):
            create_app(IndexConfig(registry=registry.host, namespace="py", cache_namespace=namespace))


def test_several_upstreams_are_asked_in_order_and_the_first_that_has_a_project_wins(
    registry: Registry, pypi: PypiServer, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    write_wheel(pypi.packages, "publickit", "1.0")
    with running_pypiserver(tmp_path / "second") as second:
        write_wheel(second.packages, "publickit", "2.0")  # shadowed: the first upstream has publickit
        write_wheel(second.packages, "otherkit", "3.0")
        config = IndexConfig(registry=registry.host, namespace="py", upstreams=(pypi.simple, second.simple))
        with running_index(create_app(config)) as server:
            first_page = json.loads(
                http.request("GET", f"{server.simple}publickit/", headers={"Accept": JSON_ACCEPT}).data
            )
            other_page = json.loads(
                http.request("GET", f"{server.simple}otherkit/", headers={"Accept": JSON_ACCEPT}).data
            )
            listing = json.loads(http.request("GET", server.simple, headers={"Accept": JSON_ACCEPT}).data)
    assert first_page["versions"] == ["1.0"]
    assert other_page["versions"] == ["3.0"]
    assert {p["name"] for p in listing["projects"]} >= {"publickit", "otherkit"}


def test_pep_691_upstreams_pass_on_sizes_extra_hashes_and_verified_core_metadata(
    registry: Registry, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    """pypiserver serves neither JSON nor PEP 658 metadata: a local server plays a PEP 691 index."""
    wheel = write_wheel(tmp_path / "dist", "publickit", "1.0")
    metadata = core_metadata("publickit", "1.0", summary="Features").encode()
    data = wheel.read_bytes()
    blake = hashlib.blake2b(data, digest_size=32).hexdigest()
    page = {
        "meta": {"api-version": "1.1"},
        "name": "publickit",
        "versions": ["1.0"],
        "files": [
            {
                "filename": wheel.name,
                "url": f"/files/{wheel.name}",
                "hashes": {"sha256": sha256_of(wheel), "blake2b_256": blake},
                "size": len(data),
                "upload-time": "2025-01-02T03:04:05.000000Z",
                "core-metadata": {"sha256": hashlib.sha256(metadata).hexdigest()},
                "yanked": "use 1.1",
            }
        ],
    }
    pages = {
        "/simple/publickit/": ("application/vnd.pypi.simple.v1+json", json.dumps(page).encode()),
        f"/files/{wheel.name}": ("application/octet-stream", data),
        f"/files/{wheel.name}.metadata": ("text/plain", metadata),
        "/simple/badmeta/": (
            "application/vnd.pypi.simple.v1+json",
            json.dumps(
                {
                    **page,
                    "name": "badmeta",
                    "files": [{**page["files"][0], "core-metadata": {"sha256": "0" * 64}}],
                }
            ).encode(),
        ),
    }
    handler = type("Handler", (_Fixed,), {"pages": pages})
    upstream_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=upstream_server.serve_forever, daemon=True)
    thread.start()
    try:
        upstream = f"http://127.0.0.1:{upstream_server.server_address[1]}/simple/"
        config = IndexConfig(registry=registry.host, namespace="py", upstreams=(upstream,))
        with running_index(create_app(config)) as index:
            url = f"{index.simple}publickit/"
            document = json.loads(http.request("GET", url, headers={"Accept": JSON_ACCEPT}).data)
            (entry,) = document["files"]
            assert document["meta"]["api-version"] == "1.1" and document["versions"] == ["1.0"]
            assert entry["hashes"] == {"sha256": sha256_of(wheel), "blake2b_256": blake}
            assert entry["size"] == len(data) and entry["upload-time"] == "2025-01-02T03:04:05.000000Z"
            assert entry["yanked"] == "use 1.1"
            fetched = http.request("GET", urljoin(url, entry["url"]) + ".metadata")
            assert fetched.status == 200 and fetched.data == metadata
            assert http.request("GET", urljoin(url, entry["url"])).data == data
            html = http.request("GET", url, headers={"Accept": "text/html"}).data.decode()
            assert f'data-core-metadata="sha256={hashlib.sha256(metadata).hexdigest()}"' in html
            bad = f"{index.url}/upstream/badmeta/{wheel.name}.metadata"
            with pytest.raises(urllib3.exceptions.ProtocolError):
                http.request("GET", bad)  # metadata that does not match its page's hash is refused too
    finally:
        upstream_server.shutdown()
        upstream_server.server_close()


def test_another_mloci_index_as_a_pep_691_upstream(
    registry: Registry, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    """A real JSON upstream with sizes and PEP 658 metadata: a second mloci index over another namespace."""
    wheel = write_wheel(tmp_path / "dist", "publickit", "1.0")
    push_distributions([wheel], f"{registry.host}/public")
    public = IndexConfig(registry=registry.host, namespace="public")
    with running_index(create_app(public)) as upstream:
        config = IndexConfig(registry=registry.host, namespace="py", upstreams=(upstream.simple,))
        with running_index(create_app(config)) as server:
            page = f"{server.simple}publickit/"
            document = json.loads(http.request("GET", page, headers={"Accept": JSON_ACCEPT}).data)
            assert document["meta"]["api-version"] == "1.1"  # sizes known: the JSON upstream gave them
            (entry,) = document["files"]
            assert entry["hashes"] == {"sha256": sha256_of(wheel)} and entry["size"] == wheel.stat().st_size
            assert "core-metadata" in entry
            env = tool_env(tmp_path)
            python = fresh_venv(tmp_path / "venv", env, with_pip=False)
            pip_install(python, server.simple, env, "publickit")
            assert f"/upstream/publickit/{wheel.name}.metadata" in server.paths()  # PEP 658, passed through
            assert f"/upstream/publickit/{wheel.name}" in server.paths()
            assert ("GET", "/simple/publickit/", 200) in upstream.requests


class _Slow(_Fixed):
    """A JSON upstream that takes half a second per page and counts the pages it served."""

    served: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        time.sleep(0.5)
        self.served.append(self.path)
        super().do_GET()


def test_concurrent_requests_for_a_cold_page_make_one_upstream_request(
    registry: Registry, http: urllib3.PoolManager
) -> None:
    page = {"meta": {"api-version": "1.0"}, "files": []}
    pages = {"/simple/publickit/": ("application/vnd.pypi.simple.v1+json", json.dumps(page).encode())}
    handler = type("Handler", (_Slow,), {"pages": pages, "served": []})
    slow = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    try:
        upstream = f"http://127.0.0.1:{slow.server_address[1]}/simple/"
        config = IndexConfig(registry=registry.host, namespace="py", upstreams=(upstream,))
        with running_index(create_app(config)) as server, ThreadPoolExecutor(max_workers=8) as pool:
            url = f"{server.simple}publickit/"
            statuses = list(pool.map(lambda _: http.request("GET", url).status, range(8)))
    finally:
        slow.shutdown()
        slow.server_close()
    assert statuses == [200] * 8
    assert handler.served == ["/simple/publickit/"]


class _StallingFile(_Fixed):
    """Serves its pages, but a file's body stops after its first bytes and never continues."""

    def do_GET(self) -> None:
        if not self.path.startswith("/files/"):
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        self.wfile.write(b"x" * 1000)
        self.wfile.flush()
        time.sleep(5)


def test_an_upstream_file_that_stalls_ends_the_download_within_the_timeout(
    registry: Registry, http: urllib3.PoolManager
) -> None:
    page = {
        "meta": {"api-version": "1.0"},
        "files": [{"filename": "p-1.0.tar.gz", "url": "/files/p-1.0.tar.gz", "hashes": {"sha256": "a" * 64}}],
    }
    pages = {"/simple/p/": ("application/vnd.pypi.simple.v1+json", json.dumps(page).encode())}
    handler = type("Handler", (_StallingFile,), {"pages": pages})
    stalling = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    stalling.daemon_threads = True
    threading.Thread(target=stalling.serve_forever, daemon=True).start()
    try:
        upstream = f"http://127.0.0.1:{stalling.server_address[1]}/simple/"
        config = IndexConfig(
            registry=registry.host, namespace="py", upstreams=(upstream,), upstream_timeout=1
        )
        with running_index(create_app(config)) as server:
            started = time.monotonic()
            with pytest.raises(urllib3.exceptions.ProtocolError):
                http.request("GET", f"{server.url}/upstream/p/p-1.0.tar.gz")
            elapsed = time.monotonic() - started
    finally:
        stalling.shutdown()
        stalling.server_close()
    assert elapsed < 3.5
