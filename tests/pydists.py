"""Real Python distributions for the wheel and index tests, built byte by byte (no network, no build backend).

Wheels follow the binary distribution format: the package, then ``*.dist-info/METADATA``,
``WHEEL`` and a ``RECORD`` with every file's urlsafe-base64 sha256 and size, so pip and uv
install them and check RECORD. Sdists are gzip'd tars with ``NAME-VERSION/PKG-INFO``. Both are
deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import re
import socket
import tarfile
import threading
import time
import zipfile
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_EPOCH = (1980, 1, 1, 0, 0, 0)


def escaped(name: str) -> str:
    """A project name as it appears in distribution file names."""
    return re.sub(r"[-_.]+", "_", name).lower()


def core_metadata(
    name: str,
    version: str,
    *,
    requires_python: str | None = ">=3.9",
    summary: str = "",
    requires: tuple[str, ...] = (),
) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if summary:
        lines.append(f"Summary: {summary}")
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {requirement}" for requirement in requires)
    return "\n".join(lines) + "\n\nA tiny package for mloci's tests.\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def write_wheel(
    directory: Path,
    name: str = "featurekit",
    version: str = "0.1.3",
    *,
    tag: str = "py3-none-any",
    requires_python: str | None = ">=3.9",
    metadata_name: str | None = None,
    metadata_version: str | None = None,
    value: int = 42,
    payload: bytes = b"",
    filename: str | None = None,
    requires: tuple[str, ...] = (),
) -> Path:
    """A pure-Python wheel whose package ``<name>`` has ``VALUE = value`` (and ``data.bin`` holding
    ``payload``, stored uncompressed, when given); metadata_* fake a mismatch with the file name."""
    module = escaped(name)
    dist_info = f"{escaped(name)}-{version}.dist-info"
    files: dict[str, bytes] = {
        f"{module}/__init__.py": f'__version__ = "{version}"\nVALUE = {value}\n'.encode(),
        f"{dist_info}/METADATA": core_metadata(
            metadata_name or name,
            metadata_version or version,
            requires_python=requires_python,
            summary="Features",
            requires=requires,
        ).encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: mloci-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    if payload:
        files[f"{module}/data.bin"] = payload
    record = [_record_line(path, data) for path, data in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    target = directory / (filename or f"{escaped(name)}-{version}-{tag}.whl")
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            method = zipfile.ZIP_STORED if path.endswith(".bin") else zipfile.ZIP_DEFLATED
            archive.writestr(zipfile.ZipInfo(path, date_time=_EPOCH), data, compress_type=method)
    return target


def write_sdist(
    directory: Path,
    name: str = "featurekit",
    version: str = "0.1.3",
    *,
    requires_python: str | None = ">=3.9",
    metadata_version: str | None = None,
    pkg_info: bool = True,
) -> Path:
    """An sdist; ``pkg_info=False`` leaves out PKG-INFO (an invalid sdist)."""
    top = f"{escaped(name)}-{version}"
    files = {
        f"{top}/PKG-INFO": core_metadata(
            name, metadata_version or version, requires_python=requires_python
        ).encode(),
        f"{top}/pyproject.toml": (
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
            '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        ).encode(),
        f"{top}/{escaped(name)}/__init__.py": f'__version__ = "{version}"\n'.encode(),
    }
    if not pkg_info:
        del files[f"{top}/PKG-INFO"]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{top}.tar.gz"
    target.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return target


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the index server, in a thread -----------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


@dataclass
class IndexServer:
    """A running index: its base URL and every request it answered as (method, path, status)."""

    url: str
    requests: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def simple(self) -> str:
        return f"{self.url}/simple/"

    def paths(self, method: str = "GET") -> list[str]:
        return [path for m, path, _ in self.requests if m == method]


@contextlib.contextmanager
def running_index(app: ASGIApp) -> Iterator[IndexServer]:
    """Serve ``app`` with uvicorn on 127.0.0.1 and a free port until the block ends, then shut down cleanly."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server_info = IndexServer(url=f"http://127.0.0.1:{port}")

    async def recording(
        scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                server_info.requests.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await app(scope, receive, capture)

    config = uvicorn.Config(recording, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="index-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the index server did not start")
        time.sleep(0.02)
    try:
        yield server_info
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


# -- a real third-party index as upstream ------------------------------------------------------------


@dataclass
class PypiServer:
    """pypiserver on 127.0.0.1 serving ``packages`` (PEP 503 HTML, sha256 fragments, no fallback to PyPI)."""

    packages: Path
    url: str
    log: Path

    @property
    def simple(self) -> str:
        return f"{self.url}/simple/"

    def requests(self, fragment: str, *, at_least: int = 0) -> int:
        """How many requests pypiserver logged whose line contains ``fragment``.

        pypiserver logs a request after answering it, so a client can be done before its line is
        written: with ``at_least``, wait (up to 10 s) for that many lines before counting.
        """
        deadline = time.monotonic() + 10
        while True:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            count = sum(1 for line in text.splitlines() if fragment in line)
            if count >= at_least or time.monotonic() > deadline:
                return count
            time.sleep(0.05)


@contextlib.contextmanager
def running_pypiserver(workdir: Path) -> Iterator[PypiServer]:
    """Start pypiserver on a free loopback port (its fallback to pypi.org is disabled)."""
    import shutil
    import subprocess
    import sys
    import urllib.request

    packages = workdir / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = workdir / "pypiserver.log"
    binary = shutil.which("pypi-server", path=str(Path(sys.executable).parent)) or "pypi-server"
    args = [binary, "run", "-vv", "--log-stream", "stderr", "--hash-algo", "sha256", "-p", str(port)]
    args += ["-i", "127.0.0.1", "-a", ".", "-P", ".", "--disable-fallback", "--backend", "simple-dir"]
    with log.open("ab") as sink:  # the access log: one line per request
        process = subprocess.Popen([*args, str(packages)], stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        while True:
            try:
                with opener.open(f"{url}/simple/", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("pypiserver did not start") from None
                time.sleep(0.1)
        yield PypiServer(packages, url, log)
    finally:
        process.terminate()
        process.wait(timeout=15)
