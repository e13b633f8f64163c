"""PEP 740: keyless sigstore bundles about one file become attestation objects pypi-attestations reads."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os

import pypi_attestations as pa
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pep740 import REPOSITORY, WORKFLOW, keyless_bundle

from mloci.errors import UsageError
from mloci.pyindex import provenance
from mloci.pyindex.attestations import parse_upload
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


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_FUZZ = settings(
    max_examples=int(os.environ.get("MLOCI_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@_FUZZ
@given(value=_json)
def test_any_upload_field_is_a_usage_error_or_bundles(value: object) -> None:
    """What a client sends as PEP 740 attestations: never anything but UsageError."""
    with contextlib.suppress(UsageError):
        parse_upload(json.dumps(value), FILENAME, SHA256)


@_FUZZ
@given(data=st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()))
def test_any_attached_bundle_converts_or_is_skipped(data: bytes) -> None:
    assert provenance.attestation_for(data, FILENAME, SHA256) is None


@_FUZZ
@given(cut=st.integers(min_value=0, max_value=4000), flip=st.integers(min_value=0, max_value=255))
def test_a_damaged_keyless_bundle_never_raises(cut: int, flip: int) -> None:
    data = bytearray(BUNDLE)
    data[cut % len(data)] ^= flip
    provenance.attestation_for(bytes(data), FILENAME, SHA256)  # None or an attestation: never an exception


BUNDLE = keyless_bundle(FILENAME, SHA256)
