"""A test-only HTTP proxy in front of the real registry that injects the faults real networks produce.

It forwards each request to the registry unchanged (the Host header too, so the registry's
Location URLs point back at the proxy) and, when a rule matches, instead answers with an error
status, cuts the response body after N bytes, cuts the request body after N bytes, or slows the
response down. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}


@dataclass
class Fault:
    """What to do to requests matching ``method`` and the ``path`` regex, for the next ``times`` matches."""

    method: str
    path: str
    status: int | None = None  # answer this instead of forwarding
    headers: dict[str, str] = field(default_factory=dict)
    cut_response_after: int | None = None  # forward, but close after this many body bytes
    cut_request_after: int | None = None  # forward only this many request body bytes, then close
    delay_per_mib: float = 0.0  # seconds to sleep per MiB of response body
    hold_request: float = (
        0.0  # wait this long before reading the request body; forward it only if it all arrives
    )
    drop_range: bool = False  # forward without the Range header, as a server ignoring it would
    cap_range: int | None = None  # forward Range asking for at most this many bytes (a server sending pieces)
    skip: int = 0  # let this many matching requests through untouched first
    times: int = 1
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.hits < self.times + self.skip
            and method == self.method
            and re.search(self.path, path) is not None
        )


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str]] = []  # (method, path) of every request, as it arrives
        self.body_bytes: dict[str, int] = {}  # request body bytes forwarded upstream, per method
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def _handle(self) -> None:
                proxy.handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def _match(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    if fault.hits <= fault.skip:
                        return None
                    return fault
        return None

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.log if m == method and re.search(path, p))

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        method, path = request.command, request.path
        self.log.append((method, path))
        fault = self._match(method, path)
        length = int(request.headers.get("Content-Length") or 0)
        if fault and fault.status is not None:
            request.rfile.read(length)
            body = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
            request.send_response(fault.status)
            for key, value in fault.headers.items():
                request.send_header(key, value)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
            return
        held: bytes | None = None
        if fault and fault.hold_request:
            time.sleep(fault.hold_request)
            held = request.rfile.read(length)
            if len(held) < length:  # the client went away meanwhile: the registry never sees it
                request.close_connection = True
                return
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for key, value in request.headers.items():
                if key.lower() not in _HOP_BY_HOP and not (
                    fault and fault.drop_range and key.lower() == "range"
                ):
                    capped = fault and fault.cap_range and key.lower() == "range"
                    upstream.putheader(key, _capped(value, fault.cap_range) if fault and capped else value)
            upstream.endheaders()
            to_send = (
                length if not (fault and fault.cut_request_after is not None) else fault.cut_request_after
            )
            sent = 0
            while sent < min(to_send, length):
                block = (
                    held
                    if held is not None
                    else request.rfile.read(min(1 << 20, min(to_send, length) - sent))
                )
                if not block:
                    break
                upstream.send(block)
                sent += len(block)
                with self._lock:
                    self.body_bytes[method] = self.body_bytes.get(method, 0) + len(block)
            if fault and fault.cut_request_after is not None:
                # Drop both sides mid-body, as a broken network would.
                upstream.sock.shutdown(socket.SHUT_RDWR) if upstream.sock else None
                request.close_connection = True
                request.connection.shutdown(socket.SHUT_RDWR)
                time.sleep(0.2)  # let the registry notice the disconnect before the client retries
                return
            response = upstream.getresponse()
            request.send_response_only(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    request.send_header(key, value)
            request.end_headers()
            limit = fault.cut_response_after if fault and fault.cut_response_after is not None else None
            written = 0
            while method != "HEAD":
                block = response.read(1 << 16)
                if not block:
                    break
                if limit is not None and written + len(block) > limit:
                    request.wfile.write(block[: limit - written])
                    request.wfile.flush()
                    request.close_connection = True
                    request.connection.shutdown(socket.SHUT_RDWR)
                    return
                request.wfile.write(block)
                written += len(block)
                if fault and fault.delay_per_mib:
                    time.sleep(fault.delay_per_mib * len(block) / (1 << 20))
        except OSError:
            request.close_connection = True
        finally:
            upstream.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _capped(value: str, cap: int) -> str:
    """``bytes=FIRST-[LAST]`` narrowed to at most ``cap`` bytes."""
    first, _, last = value.removeprefix("bytes=").partition("-")
    end = int(first) + cap - 1
    return f"bytes={first}-{min(end, int(last)) if last else end}"
