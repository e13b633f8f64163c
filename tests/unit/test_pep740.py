"""PEP 740: keyless sigstore bundles about one file become attestation objects pypi-attestations reads."""

from __future__ import annotations

import base64
import hashlib
import json

import pypi_attestations as pa
from cryptography.hazmat.primitives.asymmetric import ec
from pep740 import REPOSITORY, WORKFLOW, keyless_bundle

from mloci.pyindex import provenance
from mloci.trust.bundle import dsse_bundle

FILENAME = "featurekit-0.1.3-py3-none-any.whl"
SHA256 = hashlib.sha256(b"a wheel").hexdigest()


def test_a_keyless_bundle_about_the_file_converts_to_a_provenance_object_pypi_attestations_accepts() -> None:
    made = provenance.attestation_for(keyless_bundle(FILENAME, SHA256), FILENAME, SHA256)
    assert made is not None
    document = provenance.document([made, made])
    parsed = pa.Provenance.model_validate_json(document)
    (bundle,) = parsed.attestation_bundles  # one publisher, two attestations
    assert isinstance(bundle.publisher, pa.GitHubPublisher)
    assert (bundle.publisher.repository, bundle.publisher.workflow) == (REPOSITORY, WORKFLOW)
    attestation = bundle.attestations[0]
    assert attestation.statement["subject"] == [{"name": FILENAME, "digest": {"sha256": SHA256}}]
    assert attestation.certificate_claims["1.3.6.1.4.1.57264.1.12"] == f"https://github.com/{REPOSITORY}"
    # And back: what `pypi-attestations verify` turns it into before sigstore verifies it.
    back = attestation.to_bundle()
    assert back.signing_certificate.public_bytes is not None and back.log_entry is not None


def test_bundles_pep_740_cannot_express_convert_to_nothing() -> None:
    other_file = keyless_bundle("featurekit-0.1.3.tar.gz", SHA256)
    other_digest = keyless_bundle(FILENAME, "0" * 64)
    cosign_signature = keyless_bundle(FILENAME, SHA256, predicate_type="https://sigstore.dev/cosign/sign/v1")
    two_subjects = keyless_bundle(FILENAME, SHA256, subjects=2)
    statement = json.loads(
        base64.b64decode(json.loads(keyless_bundle(FILENAME, SHA256))["dsseEnvelope"]["payload"])
    )
    key_based = dsse_bundle(json.dumps(statement).encode(), ec.generate_private_key(ec.SECP256R1()))
    for data in (other_file, other_digest, cosign_signature, two_subjects, key_based, b"{}", b"not json"):
        assert provenance.attestation_for(data, FILENAME, SHA256) is None
    assert provenance.provenance([]) is None
