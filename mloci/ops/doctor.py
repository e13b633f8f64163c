"""``mloci doctor``: probe what a registry supports, with throw-away content in a scratch repository."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mloci.errors import MlociError, UnsupportedError
from mloci.store import Session, scoped
from mloci.store.registry import RegistryStore
from mloci.store.registry.auth import Challenge
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Manifest
from mloci.types.reference import Reference


@dataclass(frozen=True)
class Finding:
    name: str
    supported: bool | None  # None: could not be determined
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "supported": self.supported, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    registry: str
    findings: tuple[Finding, ...]

    def to_json(self) -> dict[str, Any]:
        return {"registry": self.registry, "findings": [f.to_json() for f in self.findings]}


Probe = Callable[[], tuple[bool, str]]


class _Doctor:
    def __init__(self, store: RegistryStore, repository: str) -> None:
        self.store = store
        self.repository = repository
        self.findings: list[Finding] = []
        self.config = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
        self.payload = Blob.of_bytes("application/octet-stream", f"mloci doctor {time.time_ns()}".encode())

    def probe(self, name: str, check: Probe) -> bool | None:
        try:
            supported: bool | None
            supported, detail = check()
        except MlociError as exc:
            supported, detail = None, str(exc)
        self.findings.append(Finding(name, supported, detail))
        return supported

    def ref(self, tag: str | None = None, digest: Digest | None = None) -> Reference:
        return Reference(self.store.registry, self.repository, tag, digest)

    def reachable(self) -> tuple[bool, str]:
        started = time.monotonic()
        response = self.store.transport.request("GET", "/v2/", scope="", expect=(200, 401))
        response.release_conn()
        elapsed = (time.monotonic() - started) * 1000
        challenge = (
            Challenge.parse(response.headers.get("WWW-Authenticate", "")) if response.status == 401 else None
        )
        scheme = "anonymous" if challenge is None else challenge.scheme
        if challenge and challenge.scheme == "bearer":
            scheme += f" token (realm {challenge.params.get('realm', '?')})"
        return True, f"{self.store.transport.base_url} in {elapsed:.0f} ms; auth: {scheme}"

    def credentials(self) -> tuple[bool, str]:
        self.store.ping()
        return True, "GET /v2/ accepted"

    def upload(self) -> tuple[bool, str]:
        for blob in (self.config, self.payload):
            self.store.push_blob(self.repository, blob)
        if self.store.upload_mode == "monolithic":
            return False, "PATCH refused; mloci falls back to a monolithic PUT"
        minimum = self.store.chunk_min_length
        return True, "POST, PATCH, PUT" + (f"; OCI-Chunk-Min-Length {minimum}" if minimum else "")

    def artifacts(self) -> tuple[bool, str]:
        subject = Manifest(artifact_type=mediatype.DOCTOR_PROBE, config=self.config.descriptor)
        self.subject = self.store.push_manifest(
            self.ref("doctor-subject"), subject.to_json(), mediatype.OCI_MANIFEST
        )
        referrer = Manifest(
            artifact_type=mediatype.DOCTOR_REFERRER,
            config=self.config.descriptor,
            layers=[self.payload.descriptor],
            subject=self.subject,
        )
        data = referrer.to_json()
        self.referrer = self.store.push_manifest(self.ref(), data, mediatype.OCI_MANIFEST)
        _, stored = self.store.fetch_manifest(self.ref(digest=self.referrer.digest))
        if stored != data:
            return False, "the registry re-serialized the manifest"
        return True, "artifactType and subject stored byte for byte"

    def referrers(self) -> tuple[bool, str]:
        if self.store.referrers(self.repository, self.subject.digest) is not None:
            return True, "GET /v2/<name>/referrers/<digest>"
        return False, "absent; mloci falls back to the referrers tag schema (sha256-<hex> tags)"

    def mount(self) -> tuple[bool, str]:
        mounted = self.store.mount_blob(
            f"{self.repository}-mount", self.payload.descriptor.digest, self.repository
        )
        return (
            mounted,
            "POST ?mount=&from= answered 201" if mounted else "answered 202: blobs are copied, not mounted",
        )

    def deletes(self) -> tuple[bool, str]:
        try:
            self.store.delete_manifest(self.repository, self.referrer.digest)
        except UnsupportedError:
            return False, "manifest DELETE answered 405 (deletes disabled); scratch content left in place"
        self.store.delete_manifest(self.repository, self.subject.digest)
        return True, "manifest DELETE accepted; scratch manifests removed"

    def run(self) -> None:
        # An unreachable registry is an error (exit 8), not a finding.
        self.findings.append(Finding("reachable", True, self.reachable()[1]))
        if not self.probe("credentials", self.credentials):
            return
        if not self.probe("push (chunked upload)", self.upload) and not self.store.has_blob(
            self.repository, self.payload.descriptor.digest
        ):
            self.findings.append(Finding("write probes", None, f"skipped: cannot push to {self.repository}"))
            return
        if self.probe("OCI 1.1 artifact manifests", self.artifacts) is None:
            return
        self.probe("referrers API", self.referrers)
        self.probe("cross-repository blob mount", self.mount)
        self.probe("deletes", self.deletes)


def doctor(registry: str, *, repository: str = "mloci-doctor", session: Session | None = None) -> Report:
    """Probe ``registry``; write probes use ``repository`` and clean up after themselves where deletes work."""
    with scoped(session) as active:
        checks = _Doctor(active.registry(registry), repository)
        checks.run()
        return Report(registry, tuple(checks.findings))
