"""Large-blob pulls at their edges: a partial that already holds every byte, a TLS record damaged mid-blob."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
from pathlib import Path

import pytest
from auth_fixtures import TLSRegistry
from helpers import Registry, Runner, random_bundle

SIZE = 8 << 20  # a whole number of pages and of partial-record saves


def test_a_partial_holding_every_byte_is_resumed_not_crashed_on(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    """kill -9 after the last record save but before the blob was published: the record says the whole
    blob is there. The next pull must verify and reuse it, fetching nothing."""
    bundle = random_bundle(tmp_path, "big", "model.bin", SIZE)
    result = mloci("push", bundle, f"{registry.host}/ml/big", "--json")
    assert result.exit_code == 0, result.stderr
    digest = json.loads(result.stdout)["digest"]
    data = (bundle / "model.bin").read_bytes()
    blob = hashlib.sha256(data).hexdigest()
    parent = tmp_path / "pulls"
    partials = parent / ".mloci-partial-out"
    partials.mkdir(parents=True)
    (partials / f"sha256-{blob}").write_bytes(data)
    (partials / f"sha256-{blob}.json").write_text(
        json.dumps({"version": 1, "digest": f"sha256:{blob}", "size": SIZE, "spans": [[0, SIZE]]})
    )
    result = mloci("pull", f"{registry.host}/ml/big@{digest}", "-o", parent / "out", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["bytesResumed"] == SIZE
    assert (parent / "out" / "model.bin").read_bytes() == data


class CorruptingRelay:
    """A TCP relay in front of a TLS registry that flips one byte of the server's stream once, past
    ``after`` bytes on a connection: what a faulty middlebox or NIC does (no HTTP server can)."""

    def __init__(self, upstream_port: int, after: int) -> None:
        self.upstream_port = upstream_port
        self.after = after
        self.corrupted = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        seen = 0
        try:
            while data := source.recv(1 << 16):
                if downstream and seen + len(data) > self.after:
                    with self._lock:
                        if not self.corrupted:
                            self.corrupted += 1
                            at = max(0, self.after - seen)
                            data = data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :]
                seen += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


def test_a_tls_error_mid_blob_is_a_network_break_resumed_not_a_disk_failure(
    mloci: Runner, tls_registry: TLSRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged TLS record raises ssl.SSLError (an OSError, not a ConnectionError): it is a network
    break to resume with Range, not a disk failure ('cannot write into …') that deletes the partial."""
    monkeypatch.setenv("MLOCI_CA_FILE", str(tls_registry.ca_file))
    monkeypatch.setenv("MLOCI_USERNAME", "alice")
    monkeypatch.setenv("MLOCI_PASSWORD", "wonderland-secret")
    bundle = random_bundle(tmp_path, "big", "model.bin", (24 << 20) + 4321)
    result = mloci("push", bundle, f"{tls_registry.registry.host}/ml/big", "--json")
    assert result.exit_code == 0, result.stderr
    digest = json.loads(result.stdout)["digest"]
    assert tls_registry.registry.port is not None
    relay = CorruptingRelay(tls_registry.registry.port, after=5 << 20)
    try:
        out = tmp_path / "out"
        result = mloci("pull", f"127.0.0.1:{relay.port}/ml/big@{digest}", "-o", out)
    finally:
        relay.close()
    assert relay.corrupted == 1
    assert result.exit_code == 0, result.stderr
    assert (out / "model.bin").read_bytes() == (bundle / "model.bin").read_bytes()
