"""HTTPS upstreams: verified against the system's CAs plus ``--upstream-ca-file``, never unverified.

The upstream is the real pypiserver behind a TLS-terminating proxy (pypiserver speaks plain HTTP)
whose certificate comes from the test CA the TLS registry tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from auth_fixtures import TLSCerts
from helpers import Registry, Runner
from pydists import PypiServer, running_index, running_pypiserver, write_wheel
from test_index import fresh_venv, run, tool_env

from mloci.errors import UsageError
from mloci.pyindex.app import IndexConfig, create_app
from mloci.store import StoreOptions

pytest_plugins = ["auth_fixtures"]


@contextlib.contextmanager
def tls_terminator(target_port: int, certs: TLSCerts) -> Iterator[str]:
    """HTTPS on a free loopback port, forwarded byte for byte to ``127.0.0.1:target_port``; yields its origin."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, _context: None)  # refused handshakes are the point of one test

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, ssl=context))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, name="tls-terminator", daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{port}"
    finally:

        async def stop() -> None:
            server.close()
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)
        loop.close()


@pytest.fixture
def https_pypi(
    tmp_path_factory: pytest.TempPathFactory, tls_certs: TLSCerts
) -> Iterator[tuple[PypiServer, str]]:
    """pypiserver and the HTTPS simple URL in front of it."""
    with running_pypiserver(tmp_path_factory.mktemp("pypiserver")) as pypi:
        port = int(pypi.url.rsplit(":", 1)[1])
        with tls_terminator(port, tls_certs) as origin:
            yield pypi, f"{origin}/simple/"


def test_an_https_upstream_signed_by_the_given_ca_serves_pages_and_files(
    registry: Registry, https_pypi: tuple[PypiServer, str], tls_certs: TLSCerts, tmp_path: Path
) -> None:
    pypi, simple = https_pypi
    write_wheel(pypi.packages, "publicdep", "2.0")
    config = IndexConfig(
        registry=registry.host,
        namespace="py",
        upstreams=(simple,),
        upstream_timeout=10,
        upstream_ca_file=str(tls_certs.ca_file),
    )
    env = tool_env(tmp_path)
    with running_index(create_app(config)) as server:
        python = fresh_venv(tmp_path / "venv", env, with_pip=False)
        installer = [sys.executable, "-m", "pip", "--python", str(python), "install"]
        done = run([*installer, "--index-url", server.simple, "publicdep"], env)
        assert "Successfully installed publicdep-2.0" in done.stdout
    assert (
        pypi.requests("/packages/publicdep-2.0-py3-none-any.whl", at_least=1) >= 1
    )  # streamed through, over TLS


def test_an_https_upstream_with_an_untrusted_certificate_is_a_502_naming_the_option(
    registry: Registry, https_pypi: tuple[PypiServer, str]
) -> None:
    pypi, simple = https_pypi
    write_wheel(pypi.packages, "publicdep", "2.0")
    # --insecure is the registry's: it never turns off verification of an upstream.
    config = IndexConfig(
        registry=registry.host,
        namespace="py",
        upstreams=(simple,),
        upstream_timeout=10,
        options=StoreOptions(insecure=True),
    )
    with running_index(create_app(config)) as server:
        pool = urllib3.PoolManager(retries=False, timeout=30.0)
        page = pool.request("GET", f"{server.simple}publicdep/")
        pool.clear()
    assert page.status == 502
    message = page.data.decode()
    assert "TLS certificate is not trusted" in message and "--upstream-ca-file" in message, message
    assert pypi.requests("/simple/publicdep") == 0  # nothing was sent before the handshake failed


def test_an_upstream_ca_file_that_is_not_pem_is_a_usage_error(
    registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(UsageError, match=r"cannot use .* as the upstream CA file"):
        create_app(
            IndexConfig(
                registry=registry.host,
                upstreams=("https://pypi.org/simple/",),
                upstream_ca_file=str(bogus),
            )
        )
    done = mloci(
        "index",
        "serve",
        "--registry",
        registry.host,
        "--upstream",
        "https://pypi.org/simple/",
        "--upstream-ca-file",
        str(bogus),
    )
    assert done.exit_code == 2 and "as the upstream CA file" in done.stderr, done
    assert "Traceback" not in done.stderr
