"""One referrer checked at a time (what a catalog version page shows), over a local layout store:
a real keyless SLSA bundle verifies by identity, and not for another identity or artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import SHARED

from mloci.ops import referrers
from mloci.ops.trustcheck import check_referrer, checkable
from mloci.store import LayoutStore
from mloci.trust.keyless import IdentityRule
from mloci.trust.verifier import TrustRule
from mloci.types import Reference
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def vector(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        next((SHARED / "interop" / "sigstore").glob(f"{name}-*.json")).read_text()
    )
    return value


def attached(tmp_path: Path, subject: Digest, data: bytes) -> tuple[LayoutStore, Reference, Descriptor]:
    store = LayoutStore(tmp_path / "home")
    repo = Reference.parse("conformance/a")
    empty = Blob.of_bytes("application/vnd.oci.empty.v1+json", b"{}")
    layer = Blob.of_bytes(BUNDLE, data)
    for blob in (empty, layer):
        store.push_blob(repo.repository, blob)
    manifest = Manifest(
        artifact_type=BUNDLE,
        config=empty.descriptor,
        layers=[layer.descriptor],
        subject=Descriptor(media_type="application/vnd.oci.image.manifest.v1+json", digest=subject, size=1),
    )
    referrers.attach(store, repo, manifest)
    entry = Descriptor.of_bytes(manifest.media_type, manifest.to_json(), artifact_type=BUNDLE)
    return store, repo, entry


def test_a_keyless_attestation_verifies_by_identity_and_only_for_its_subject(tmp_path: Path) -> None:
    pytest.importorskip("sigstore")
    v = vector("06")
    subject = Digest.parse("sha256:" + v["subject"]["sha256"])
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(v["trusted_root"]))
    store, repo, entry = attached(tmp_path, subject, json.dumps(v["bundle"]).encode())
    assert checkable(entry)
    who = IdentityRule(v["expected_identity"], v["expected_issuer"])
    ok = check_referrer(store, repo, subject, entry, [TrustRule.of(identity=who, trusted_root=root)])
    assert ok.verified, ok.detail
    assert ok.predicate_type is not None and ok.predicate_type.startswith("https://slsa.dev/provenance/")
    assert ok.signer == v["expected_identity"] and ok.detail.startswith("attestation verified with")

    stranger = IdentityRule("https://github.com/evil/x", v["expected_issuer"])
    refused = check_referrer(
        store, repo, subject, entry, [TrustRule.of(identity=stranger, trusted_root=root)]
    )
    assert not refused.verified and "identity" in refused.detail

    other = Digest.of(b"another artifact")
    moved = check_referrer(store, repo, other, entry, [TrustRule.of(identity=who, trusted_root=root)])
    assert not moved.verified and "another artifact" in moved.detail
    store.close()


def test_only_bundles_and_envelopes_are_checkable() -> None:
    digest = Digest.of(b"x")
    assert not checkable(
        Descriptor(media_type="m", digest=digest, size=1, artifact_type="application/spdx+json")
    )
    assert checkable(
        Descriptor(
            media_type="m", digest=digest, size=1, artifact_type="application/vnd.dsse.envelope.v1+json"
        )
    )
