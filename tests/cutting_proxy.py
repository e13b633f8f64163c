"""A TCP proxy that can cut connections mid-response: a registry that goes away in the middle of a request."""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to ``target``; once :meth:`cut_after` is called, every connection is
    closed abruptly after that many more response bytes (and new ones right away)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._budget: int | None = None
        self._sockets: list[socket.socket] = []
        self._stopped = False
        self._stalled = False
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut_after(self, nbytes: int) -> None:
        with self._lock:
            self._budget = nbytes

    def stall(self) -> None:
        """From now on no response byte passes and no connection closes: a registry that stops
        answering mid-request (a fault no real registry produces on purpose, hence this proxy)."""
        with self._lock:
            self._stalled = True

    def _spend(self, n: int) -> int:
        """How many of ``n`` bytes may still pass (-1: all)."""
        with self._lock:
            if self._budget is None:
                return -1
            allowed = min(n, self._budget)
            self._budget -= allowed
            return allowed

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, response: bool) -> None:
        try:
            while data := source.recv(65536):
                if response and self._stalled:
                    self._closed.wait()  # hold the connection open, answering nothing
                    break
                if response:
                    allowed = self._spend(len(data))
                    if allowed != -1:
                        sink.sendall(data[:allowed])
                        if allowed < len(data):
                            break
                        continue
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            # shutdown, not just close: it wakes the other direction's blocked recv and tells the
            # peer at once (a close alone waits for that recv to return).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._stopped = True
        self._closed.set()
        self._server.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
