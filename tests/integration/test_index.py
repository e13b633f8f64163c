"""mloci index serve: the simple API and uploads, exercised by the real pip, uv and twine.

The index runs with uvicorn in a thread (``pydists.running_index``) over a real distribution
registry; pip and uv install into fresh virtual environments. Only 127.0.0.1 is ever contacted:
the tools get an environment without proxies, config files or extra find-links.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import urllib3
from auth_fixtures import TokenRegistry
from helpers import Registry
from pydists import IndexServer, core_metadata, running_index, sha256_of, write_sdist, write_wheel

from mloci.ops.wheel import push_distributions, read_release, yank
from mloci.pyindex.app import IndexConfig, create_app
from mloci.pyindex.negotiation import HTML_V1, JSON_V1, TEXT_HTML, choose
from mloci.store import RegistryStore
from mloci.store.registry.auth import Credentials
from mloci.types import Reference

JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)


# -- fixtures and tools ----------------------------------------------------------------------------


@pytest.fixture
def index(registry: Registry) -> Iterator[IndexServer]:
    with running_index(create_app(IndexConfig(registry=registry.host, namespace="py"))) as server:
        yield server


def tool_env(tmp_path: Path) -> dict[str, str]:
    """The environment for pip, uv and twine: no config, cache, proxy or find-links of this machine."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "TWINE_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        PIP_NO_INPUT="1",
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        NO_PROXY="*",
        NO_COLOR="1",
    )
    return env


def run(args: list[str], env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{args[:4]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def fresh_venv(path: Path, env: dict[str, str], *, with_pip: bool) -> Path:
    run([sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(path)], env)
    return path / "bin" / "python"


def imported(python: Path, env: dict[str, str]) -> str:
    return run(
        [str(python), "-c", "import featurekit; print(featurekit.__version__, featurekit.VALUE)"], env
    ).stdout.strip()


def publish(registry: Registry, *paths: Path) -> None:
    push_distributions(list(paths), f"{registry.host}/py")


def get_json(http: urllib3.PoolManager, url: str) -> dict[str, Any]:
    response = http.request("GET", url, headers={"Accept": JSON_ACCEPT})
    assert response.status == 200, response.data
    assert response.headers["Content-Type"] == JSON_V1
    value: dict[str, Any] = json.loads(response.data)
    return value


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []
        self.meta: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "meta":
            values = dict(attrs)
            self.meta[values.get("name") or ""] = values.get("content")


def anchors_of(html: str) -> Anchors:
    parser = Anchors()
    parser.feed(html)
    return parser


# -- installers ----------------------------------------------------------------------------------


def test_pip_bundled_with_python_installs_from_the_index(
    registry: Registry, index: IndexServer, tmp_path: Path
) -> None:
    publish(registry, write_wheel(tmp_path / "dist"), write_sdist(tmp_path / "dist"))
    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=True)
    version = run([str(python), "-m", "pip", "--version"], env).stdout
    done = run(
        [str(python), "-m", "pip", "install", "--index-url", index.simple, "--no-deps", "featurekit==0.1.3"],
        env,
    )
    assert "Successfully installed featurekit-0.1.3" in done.stdout, version
    assert imported(python, env) == "0.1.3 42"
    wheel_path = "/packages/featurekit/0.1.3/featurekit-0.1.3-py3-none-any.whl"
    assert wheel_path in index.paths()
    assert f"{wheel_path}.metadata" in index.paths(), f"{version.split()[1]} did not use PEP 658 metadata"


def test_current_pip_installs_and_skips_yanked_releases(
    registry: Registry, index: IndexServer, tmp_path: Path
) -> None:
    publish(registry, write_wheel(tmp_path / "a", version="0.1.3"))
    publish(registry, write_wheel(tmp_path / "b", version="0.2.0", value=2))
    yank(f"{registry.host}/py/featurekit==0.2.0", reason="broken <build>")
    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=False)
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--index-url",
        index.simple,
        "--no-deps",
    ]
    run([*pip, "featurekit"], env)
    assert imported(python, env) == "0.1.3 42"  # the yanked 0.2.0 is skipped
    pinned = run([*pip, "featurekit==0.2.0"], env)
    assert imported(python, env) == "0.2.0 2"  # pinned with ==, a yanked release still installs
    assert "broken <build>" in pinned.stdout + pinned.stderr  # pip's yank warning carries the reason


def test_uv_installs_from_the_index(registry: Registry, index: IndexServer, tmp_path: Path) -> None:
    try:
        import uv
    except ImportError:
        pytest.skip("uv is not installed (pip install uv)")
    publish(registry, write_wheel(tmp_path / "dist"), write_sdist(tmp_path / "dist"))
    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=False)
    uv_bin = uv.find_uv_bin()
    run(
        [
            uv_bin,
            "pip",
            "install",
            "--python",
            str(python),
            "--index-url",
            index.simple,
            "--no-deps",
            "featurekit",
        ],
        env,
    )
    assert imported(python, env) == "0.1.3 42"
    assert "/packages/featurekit/0.1.3/featurekit-0.1.3-py3-none-any.whl" in index.paths()


def test_an_unknown_project_is_a_clean_pip_error(index: IndexServer, tmp_path: Path) -> None:
    env = tool_env(tmp_path)
    python = fresh_venv(tmp_path / "venv", env, with_pip=False)
    done = run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--index-url",
            index.simple,
            "nosuchproject",
        ],
        env,
        check=False,
    )
    assert done.returncode != 0
    assert "No matching distribution found for nosuchproject" in done.stderr
    assert "Traceback" not in done.stderr
    assert ("GET", "/simple/nosuchproject/", 404) in index.requests


# -- twine and the upload API ------------------------------------------------------------------


ANONYMOUS = ("ci", "unused")  # twine always sends credentials; an anonymous registry ignores them


def twine(
    files: list[Path], url: str, env: dict[str, str], *extra: str, auth: tuple[str, str] = ANONYMOUS
) -> subprocess.CompletedProcess[str]:
    user, password = auth
    args = [sys.executable, "-m", "twine", "upload", "--repository-url", url, "-u", user, "-p", password]
    return run(
        [*args, "--non-interactive", "--disable-progress-bar", *extra, *map(str, files)], env, check=False
    )


def test_twine_uploads_and_published_files_stay_immutable(
    registry: Registry, index: IndexServer, tmp_path: Path
) -> None:
    env = tool_env(tmp_path)
    files = [write_wheel(tmp_path / "dist"), write_sdist(tmp_path / "dist")]
    first = twine(files, f"{index.url}/", env)
    assert first.returncode == 0, first.stdout + first.stderr
    store = RegistryStore(registry.host)
    try:
        release = read_release(store, Reference(registry.host, "py/featurekit"), "0.1.3")
        assert release is not None
        assert {f.filename: f.sha256 for f in release.files} == {p.name: sha256_of(p) for p in files}
        wheel_file = release.file(files[0].name)
        assert wheel_file is not None and wheel_file.metadata is not None
        digest = release.digest
        assert twine(files, f"{index.url}/", env).returncode == 0  # the same bytes again: a no-op
        again = read_release(store, Reference(registry.host, "py/featurekit"), "0.1.3")
        assert again is not None and again.digest == digest
    finally:
        store.close()
    other = write_wheel(tmp_path / "other", value=7)
    refused = twine([other], f"{index.url}/legacy/", env, "--verbose")
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "409" in output and "immutable" in output


def upload_fields(path: Path, **overrides: str) -> list[tuple[str, Any]]:
    data = path.read_bytes()
    fields: dict[str, Any] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": "featurekit",
        "version": "0.1.3",
        "filetype": "bdist_wheel" if path.suffix == ".whl" else "sdist",
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }
    fields.update(overrides)
    return [
        *fields.items(),
        ("content", (overrides.get("filename", path.name), data, "application/octet-stream")),
    ]


def test_bad_uploads_get_a_400_with_one_line_and_store_nothing(
    registry: Registry, index: IndexServer, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    wheel = write_wheel(tmp_path / "dist")
    renamed = write_wheel(tmp_path / "renamed", metadata_name="otherkit")
    cases: list[tuple[list[tuple[str, Any]], str]] = [
        (upload_fields(wheel, sha256_digest="0" * 64), "sha256_digest"),
        (upload_fields(wheel, blake2_256_digest="1" * 64), "blake2_256_digest"),
        (upload_fields(wheel, filename="notes.txt"), "neither a wheel nor an sdist"),
        (upload_fields(renamed), "its metadata says 'otherkit'"),
        (upload_fields(wheel, name="otherkit"), "names project 'otherkit'"),
        (upload_fields(wheel, version="9.9"), "names version '9.9'"),
        (upload_fields(wheel, filetype="sdist"), "is a bdist_wheel"),
        (upload_fields(wheel, **{":action": "submit"}), "unsupported :action"),
    ]
    for fields, message in cases:
        response = http.request("POST", f"{index.url}/", fields=fields)
        body = response.data.decode()
        assert response.status == 400, body
        assert message in body and body.count("\n") == 1, body
    plain = http.request("POST", f"{index.url}/", body=b"x", headers={"Content-Type": "text/plain"})
    assert plain.status == 400
    assert registry.requests_matching(r'"(PUT|POST|PATCH) /v2/') == 0


def test_a_read_only_index_refuses_uploads(
    registry: Registry, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    wheel = write_wheel(tmp_path / "dist")
    config = IndexConfig(registry=registry.host, namespace="py", read_only=True)
    with running_index(create_app(config)) as server:
        response = http.request("POST", f"{server.url}/", fields=upload_fields(wheel))
    assert response.status == 403 and b"read-only" in response.data
    assert registry.requests_matching(r'"(PUT|POST|PATCH) /v2/') == 0


# -- the simple API itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON_V1),
        ("*/*", JSON_V1),
        (PIP_ACCEPT, JSON_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.v1+html", HTML_V1),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
        ("text/html", TEXT_HTML),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", TEXT_HTML),  # a browser
        ("application/vnd.pypi.simple.v1+json;q=0.2, application/vnd.pypi.simple.v1+html", HTML_V1),
        ("application/vnd.pypi.simple.v1+json;q=0, */*;q=0.5", HTML_V1),
        ("application/xml", None),
        ("application/vnd.pypi.simple.v2+json", None),
    ],
)
def test_content_negotiation(accept: str | None, chosen: str | None) -> None:
    assert choose(accept) == chosen


def test_format_parameter_overrides_accept() -> None:
    assert choose(JSON_ACCEPT, "application/vnd.pypi.simple.v1+html") == HTML_V1
    assert choose("text/html", "application/vnd.pypi.simple.latest+json") == JSON_V1
    assert choose("text/html", "application/x-nonsense") is None


def test_pep_691_json_pep_503_html_and_pep_658_metadata(
    registry: Registry, index: IndexServer, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    wheel = write_wheel(tmp_path / "dist", requires_python=">=3.9,<4")
    sdist = write_sdist(tmp_path / "dist", requires_python=">=3.9,<4")
    publish(registry, wheel, sdist)
    page = f"{index.simple}featurekit/"

    document = get_json(http, page)
    assert set(document) >= {"meta", "name", "files", "versions"}
    assert document["meta"] == {"api-version": "1.1"}
    assert (document["name"], document["versions"]) == ("featurekit", ["0.1.3"])
    files = {entry["filename"]: entry for entry in document["files"]}
    assert set(files) == {wheel.name, sdist.name}
    for path in (wheel, sdist):
        entry = files[path.name]
        assert set(entry) >= {"filename", "url", "hashes", "size", "requires-python"}
        assert entry["hashes"] == {"sha256": sha256_of(path)}
        assert entry["size"] == path.stat().st_size
        assert entry["requires-python"] == ">=3.9,<4"
        assert "dist-info-metadata" not in entry and "yanked" not in entry
        fetched = http.request("GET", urljoin(page, entry["url"]))
        assert fetched.status == 200 and hashlib.sha256(fetched.data).hexdigest() == sha256_of(path)
        assert fetched.headers["Content-Length"] == str(path.stat().st_size)
        assert "immutable" in fetched.headers["Cache-Control"]
    assert "core-metadata" not in files[sdist.name]
    metadata_hash = files[wheel.name]["core-metadata"]["sha256"]
    metadata = http.request("GET", urljoin(page, files[wheel.name]["url"]) + ".metadata")
    assert metadata.status == 200
    assert hashlib.sha256(metadata.data).hexdigest() == metadata_hash
    assert (
        metadata.data
        == core_metadata("featurekit", "0.1.3", requires_python=">=3.9,<4", summary="Features").encode()
    )
    assert http.request("GET", urljoin(page, files[sdist.name]["url"]) + ".metadata").status == 404

    html = http.request("GET", page, headers={"Accept": "text/html"})
    assert html.status == 200 and html.headers["Content-Type"] == "text/html; charset=utf-8"
    assert html.headers["Vary"] == "Accept"
    text = html.data.decode()
    assert 'data-requires-python="&gt;=3.9,&lt;4"' in text  # escaped as PEP 503 demands
    parsed = anchors_of(text)
    assert parsed.meta["pypi:repository-version"] == "1.1"
    by_name = {urljoin(page, a["href"] or "").rsplit("/", 1)[-1].split("#")[0]: a for a in parsed.anchors}
    anchor = by_name[wheel.name]
    assert (anchor["href"] or "").endswith(f"#sha256={sha256_of(wheel)}")
    assert anchor["data-requires-python"] == ">=3.9,<4"
    assert anchor["data-core-metadata"] == anchor["data-dist-info-metadata"] == f"sha256={metadata_hash}"
    assert "data-core-metadata" not in by_name[sdist.name]
    explicit = http.request("GET", page, headers={"Accept": "application/vnd.pypi.simple.v1+html"})
    assert explicit.headers["Content-Type"] == HTML_V1
    assert (
        http.request("GET", f"{page}?format={HTML_V1}", headers={"Accept": JSON_ACCEPT}).headers[
            "Content-Type"
        ]
        == HTML_V1
    )
    assert http.request("GET", page, headers={"Accept": "application/xml"}).status == 406

    moved = http.request("GET", f"{index.simple}FeatureKit/", redirect=False)
    assert moved.status == 301 and moved.headers["Location"] == "../featurekit/"
    followed = http.request(
        "GET", f"{index.simple}FeatureKit/", retries=urllib3.Retry(total=2, connect=0, read=0)
    )
    assert followed.status == 200
    assert http.request("GET", f"{index.simple}featurekit", redirect=False).status in (301, 307, 308)

    root = get_json(http, index.simple)
    assert root["meta"] == {"api-version": "1.1"} and {"name": "featurekit"} in root["projects"]
    root_html = anchors_of(http.request("GET", index.simple, headers={"Accept": "text/html"}).data.decode())
    assert {"href": "featurekit/"} in root_html.anchors

    head = http.request("HEAD", urljoin(page, files[wheel.name]["url"]))
    assert (
        head.status == 200
        and head.headers["Content-Length"] == str(wheel.stat().st_size)
        and head.data == b""
    )
    assert http.request("GET", f"{index.url}/packages/featurekit/0.1.3/nope.whl").status == 404
    assert http.request("GET", f"{index.url}/packages/featurekit/9.9/{wheel.name}").status == 404


def test_yanked_releases_are_marked_in_both_forms(
    registry: Registry, index: IndexServer, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    publish(registry, write_wheel(tmp_path / "a", version="0.1.3"))
    publish(registry, write_wheel(tmp_path / "b", version="0.2.0"))
    yank(f"{registry.host}/py/featurekit==0.2.0", reason='broken "ABI" <x>')
    yank(f"{registry.host}/py/featurekit==0.1.3")
    page = f"{index.simple}featurekit/"
    files = {f["filename"]: f for f in get_json(http, page)["files"]}
    assert files["featurekit-0.2.0-py3-none-any.whl"]["yanked"] == 'broken "ABI" <x>'
    assert files["featurekit-0.1.3-py3-none-any.whl"]["yanked"] is True
    html = http.request("GET", page, headers={"Accept": "text/html"}).data.decode()
    assert 'data-yanked="broken &quot;ABI&quot; &lt;x&gt;"' in html
    anchors = {a["href"]: a for a in anchors_of(html).anchors}
    assert sorted(a.get("data-yanked") or "" for a in anchors.values()) == ["", 'broken "ABI" <x>']


def test_concurrent_downloads_stream_and_verify(
    registry: Registry, index: IndexServer, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    wheel = write_wheel(tmp_path / "dist", payload=os.urandom(6 << 20))  # several registry chunks
    publish(registry, wheel)
    url = f"{index.url}/packages/featurekit/0.1.3/{wheel.name}"
    expected = sha256_of(wheel)

    def fetch(_: int) -> str:
        response = http.request("GET", url, preload_content=False)
        hasher = hashlib.sha256()
        for chunk in response.stream(1 << 16):
            hasher.update(chunk)
        response.release_conn()
        assert response.status == 200
        return hasher.hexdigest()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(fetch, range(8))) == [expected] * 8
    assert [s for m, p, s in index.requests if p.endswith(".whl")] == [200] * 8


def test_a_corrupt_blob_never_reaches_a_client_whole(
    registry: Registry, index: IndexServer, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    wheel = write_wheel(tmp_path / "dist", payload=os.urandom(3 << 20))
    publish(registry, wheel)
    stored = registry.blob_data_path(f"sha256:{sha256_of(wheel)}")
    data = bytearray(stored.read_bytes())
    data[-100] ^= 0xFF  # same size, other bytes: only the digest can tell
    stored.write_bytes(bytes(data))
    url = f"{index.url}/packages/featurekit/0.1.3/{wheel.name}"
    with pytest.raises(urllib3.exceptions.ProtocolError):
        http.request("GET", url)


# -- credentials -----------------------------------------------------------------------------------


def test_client_credentials_pass_through_to_the_registry(
    token_registry: TokenRegistry, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    registry = token_registry.registry
    alice = token_registry.users["alice"]
    env = tool_env(tmp_path)
    config = IndexConfig(registry=registry.host, namespace="py")
    with running_index(create_app(config)) as server:
        anonymous = http.request("GET", f"{server.simple}featurekit/")
        assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        files = [write_wheel(tmp_path / "dist")]
        denied = twine(files, f"{server.url}/", env, auth=("bob", token_registry.users["bob"]))
        assert denied.returncode != 0 and "401" in denied.stdout + denied.stderr
        uploaded = twine(files, f"{server.url}/", env, auth=("alice", alice))
        assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr

        python = fresh_venv(tmp_path / "venv", env, with_pip=False)
        pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
        refused = run([*pip, "--index-url", server.simple, "featurekit"], env, check=False)
        assert refused.returncode != 0
        authed = server.simple.replace("http://", f"http://alice:{alice}@")
        run([*pip, "--index-url", authed, "featurekit"], env)
        assert imported(python, env) == "0.1.3 42"
    store = RegistryStore(registry.host, credentials=Credentials("alice", alice))
    try:
        assert read_release(store, Reference(registry.host, "py/featurekit"), "0.1.3") is not None
    finally:
        store.close()


# -- the command -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


CLI = "import sys; from mloci.cli import main; sys.exit(main(sys.argv[1:]))"


def test_mloci_index_serve_runs_and_stops_cleanly(
    registry: Registry, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    publish(registry, write_wheel(tmp_path / "dist"))
    port = free_port()
    args = [sys.executable, "-c", CLI, "index", "serve", "--registry", registry.host, "--namespace", "py"]
    process = subprocess.Popen(
        [*args, "--port", str(port), "--read-only", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = http.request("GET", f"http://127.0.0.1:{port}/simple/featurekit/")
                break
            except urllib3.exceptions.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert response.status == 200 and response.headers["Content-Type"] == JSON_V1
        upload = http.request(
            "POST", f"http://127.0.0.1:{port}/", fields=upload_fields(write_wheel(tmp_path / "x"))
        )
        assert upload.status == 403
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says how it ended
    # (143, mloci's exit code for SIGTERM).
    assert process.returncode in (0, 143, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr

    bad = subprocess.run(
        [sys.executable, "-c", CLI, "index", "serve", "--registry", "not a host"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("mloci: error: ")
