"""Blob downloads redirected to object storage never carry the registry's credentials along.

Real registries redirect blob GETs to presigned S3/GCS URLs; no local registry here does, so two
tiny servers stand in: a "registry" that demands Basic auth and redirects, and a "storage" host
that records the headers it receives.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mloci.store.registry import RegistryStore
from mloci.store.registry.auth import Credentials
from mloci.types import Descriptor, Digest

PAYLOAD = b"weights" * 1000
DIGEST = Digest("sha256", hashlib.sha256(PAYLOAD).hexdigest())
EXPECTED = "Basic " + base64.b64encode(b"alice:secret").decode()


class Recorder:
    def __init__(self) -> None:
        self.storage_headers: list[dict[str, str]] = []


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def servers() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Storage(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            recorder.storage_headers.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

    storage, storage_thread = serve(Storage)

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != EXPECTED:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(307)
            self.send_header(
                "Location", f"http://127.0.0.1:{storage.server_address[1]}/bucket/blob?sig=presigned"
            )
            self.send_header("Content-Length", "0")
            self.end_headers()

    registry, registry_thread = serve(Registry)
    try:
        yield f"127.0.0.1:{registry.server_address[1]}", recorder
    finally:
        for server, thread in ((registry, registry_thread), (storage, storage_thread)):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def test_redirect_to_storage_drops_the_authorization_header(servers: tuple[str, Recorder]) -> None:
    host, recorder = servers
    store = RegistryStore(host, plain_http=True, credentials=Credentials("alice", "secret"))
    descriptor = Descriptor(media_type="application/octet-stream", digest=DIGEST, size=len(PAYLOAD))
    with store.open_blob("ml/model", descriptor) as chunks:
        assert b"".join(chunks) == PAYLOAD
    store.close()
    assert len(recorder.storage_headers) == 1
    assert "Authorization" not in recorder.storage_headers[0]
