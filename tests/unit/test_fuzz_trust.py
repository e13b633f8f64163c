"""Fuzzing the trust parsers added for issue 14: whatever a registry or a bundle file holds, the answer is
``Rejected`` (a signature that does not count) or an ``MlociError`` — never another exception.

Seeds are the real vectors (a key-based bundle with Rekor entry and RFC 3161 timestamp, a cosign v2
keyless ``.sig`` layer, a cosign ``sign-blob --bundle`` file); hypothesis replaces one field at a
time with arbitrary JSON or bytes. ``MLOCI_FUZZ_EXAMPLES`` deepens the run, as in test_fuzz.py.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import SHARED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloci.errors import MlociError
from mloci.trust import Rejected, rekor, timestamp
from mloci.trust.keyless import IdentityRule
from mloci.trust.legacy_keyless import verify_layer
from mloci.trust.verifier import TrustRule, verify_bundle_file
from mloci.types.digest import Digest

pytest.importorskip("rfc3161_client", reason="timestamps need the sigstore extra")

FUZZ = settings(
    max_examples=int(os.environ.get("MLOCI_FUZZ_EXAMPLES", "100")) * 2 // 5 or 1,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DATA = Path(__file__).parent.parent / "data" / "cosign-legacy-keyless"
KEYED_BLOB = json.loads(
    (SHARED / "interop/sigstore/12-cosign-v3-sign-blob-keyed-message-rekor-tsa.json").read_text()
)
ROOT: dict[str, Any] = KEYED_BLOB["trusted_root"]
LEGACY = json.loads((DATA / "salrashid123-securebuild-bazel.json").read_text())

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _replace(document: Any, path: list[int], value: Any) -> Any:
    """``document`` with the field reached by walking ``path`` (indices into sorted keys) set to ``value``.

    The walk stops at the path's end or at a leaf, so containers (``logId``, ``inclusionProof``…)
    are replaced by other types as often as leaves are.
    """
    document = copy.deepcopy(document)
    node = document
    for position, step in enumerate(path):
        if isinstance(node, dict) and node:
            key: Any = sorted(node)[step % len(node)]
        elif isinstance(node, list) and node:
            key = step % len(node)
        else:
            return document
        child = node[key]
        if position == len(path) - 1 or not isinstance(child, dict | list) or not child:
            node[key] = value
            return document
        node = child
    return document


@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=6), value=json_values)
def test_tlog_entries_and_timestamps_reject_or_verify(path: list[int], value: Any) -> None:
    entry = _replace(KEYED_BLOB["bundle"]["verificationMaterial"]["tlogEntries"][0], path, value)
    for version in ("0.0.1", "0.0.2"):
        changed = copy.deepcopy(entry)
        if isinstance(changed.get("kindVersion"), dict):
            changed["kindVersion"]["version"] = version
        with contextlib.suppress(Rejected):
            rekor.verify_entry(changed, rekor.log_keys(ROOT))
    document = _replace(KEYED_BLOB["bundle"], [0, *path], value)  # under verificationMaterial
    with contextlib.suppress(Rejected):
        timestamp.verify_timestamps(document, b"signature", ROOT)


@FUZZ
@given(token=st.binary(max_size=400))
def test_arbitrary_timestamp_tokens_are_rejected(token: bytes) -> None:
    document = {"verificationMaterial": {"timestampVerificationData": {"rfc3161Timestamps": [
        {"signedTimestamp": base64.b64encode(token).decode()}]}}}  # fmt: skip
    with pytest.raises(Rejected):
        timestamp.verify_timestamps(document, b"signature", ROOT)


@FUZZ
@given(
    name=st.sampled_from(sorted(LEGACY["manifest"]["layers"][1]["annotations"])), value=st.text(max_size=300)
)
def test_keyless_legacy_layers_reject_or_verify(name: str, value: str) -> None:
    annotations = dict(LEGACY["manifest"]["layers"][1]["annotations"])
    annotations[name] = value
    rule = IdentityRule(identity=LEGACY["expected_identity"], issuer=LEGACY["expected_issuer"])
    try:
        verify_layer(base64.b64decode(LEGACY["payload_b64"]), annotations, rule, ROOT)
    except Rejected as rejected:
        assert "\n" not in rejected.reason


@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=5), value=json_values)
def test_blob_bundle_files_reject_or_verify(path: list[int], value: Any, tmp_path: Path) -> None:
    vector = json.loads((DATA / "sigstore-rs-sign-blob-bundle.json").read_text())
    document = _replace(json.loads(vector["bundle_raw"]), path, value)
    bundle = tmp_path / "artifact.bundle"
    bundle.write_text(json.dumps(document))
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(ROOT))
    rule = TrustRule.of(
        None, IdentityRule(identity=vector["expected_identity"], issuer=vector["expected_issuer"]), root
    )
    try:
        verify_bundle_file(bundle, rule, digest=Digest.parse("sha256:" + vector["artifact_sha256"]))
    except MlociError as error:
        assert "\n" not in error.message


@FUZZ
@given(
    path=st.lists(st.integers(0, 50), min_size=1, max_size=7),
    value=json_values,
    body=st.one_of(st.none(), json_values),
    version=st.sampled_from(["0.0.1", "0.0.2"]),
)
def test_key_based_bundles_with_log_entries_reject_or_verify(
    path: list[int], value: Any, body: Any, version: str, tmp_path: Path
) -> None:
    """The logged body (v1 or v2 shape) and every other field: an IntegrityError, never a crash."""
    document = _replace(KEYED_BLOB["bundle"], path, value)
    material = document.get("verificationMaterial")
    entries = material.get("tlogEntries") if isinstance(material, dict) else None
    if body is not None and isinstance(entries, list) and entries and isinstance(entries[0], dict):
        entries[0]["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()
        if isinstance(entries[0].get("kindVersion"), dict):
            entries[0]["kindVersion"]["version"] = version
    bundle = tmp_path / "blob.sigstore.json"
    bundle.write_text(json.dumps(document))
    key = tmp_path / "cosign.pub"
    key.write_text(KEYED_BLOB["public_key_pem"])
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(ROOT))
    try:
        verify_bundle_file(
            bundle,
            TrustRule.of(key, None, root),
            digest=Digest.parse("sha256:" + KEYED_BLOB["subject"]["sha256"]),
        )
    except MlociError as error:
        assert "\n" not in error.message


# -- keyless: sigstore bundles and cosign v1/v2 .att layers -----------------------------------------

KEYLESS = json.loads(
    (SHARED / "interop/sigstore/04-cosign-v3-image-sign-keyless-dsse-kubewarden.json").read_text()
)


def _keyless_case(document: Any, tmp_path: Path) -> tuple[Path, TrustRule, Digest]:
    bundle = tmp_path / "image.sigstore.json"
    bundle.write_text(json.dumps(document))
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(KEYLESS["trusted_root"]))
    identity = IdentityRule(identity=KEYLESS["expected_identity"], issuer=KEYLESS["expected_issuer"])
    return bundle, TrustRule.of(None, identity, root), Digest.parse("sha256:" + KEYLESS["subject"]["sha256"])


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("certificate", base64.b64encode(b"not x509").decode(), "not a DER X.509 certificate"),
        ("certificate", "MAMCAQE=", "not a DER X.509 certificate"),  # DER, but not a certificate
        (
            "certificate",
            KEYLESS["bundle"]["verificationMaterial"]["certificate"]["rawBytes"][:-7],
            "not base64",
        ),
        ("payload", KEYLESS["bundle"]["dsseEnvelope"]["payload"][:-3], "the payload is not base64"),
        ("sig", 5, "needs a 'sig'"),
    ],
)
def test_malformed_keyless_bundles_are_one_line_errors(
    field: str, value: Any, reason: str, tmp_path: Path
) -> None:
    """Truncated base64, wrong JSON types, a certificate that is not X.509: exit 6 in one line, no traceback."""
    document = copy.deepcopy(KEYLESS["bundle"])
    if field == "certificate":
        document["verificationMaterial"]["certificate"]["rawBytes"] = value
    elif field == "payload":
        document["dsseEnvelope"]["payload"] = value
    else:
        document["dsseEnvelope"]["signatures"][0]["sig"] = value
    bundle, rule, digest = _keyless_case(document, tmp_path)
    with pytest.raises(MlociError) as caught:
        verify_bundle_file(bundle, rule, digest=digest)
    assert caught.value.exit_code == 6 and reason in caught.value.message
    assert "\n" not in caught.value.message


@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=6), value=json_values)
def test_keyless_bundles_reject_or_verify(path: list[int], value: Any, tmp_path: Path) -> None:
    bundle, rule, digest = _keyless_case(_replace(KEYLESS["bundle"], path, value), tmp_path)
    try:
        verify_bundle_file(bundle, rule, digest=digest)
    except MlociError as error:
        assert "\n" not in error.message


@FUZZ
@given(
    name=st.sampled_from(
        ["dev.sigstore.cosign/certificate", "dev.sigstore.cosign/chain", "dev.sigstore.cosign/bundle",
         "dev.sigstore.cosign/rfc3161timestamp"]
    ),
    value=st.text(max_size=300) | json_values.map(json.dumps),
    blob=st.none() | st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
)  # fmt: skip
def test_keyless_att_layers_reject_or_verify(name: str, value: str, blob: bytes | None) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from mloci.trust.legacy_keyless import verify_attestation_layer

    material = KEYLESS["bundle"]["verificationMaterial"]
    certificate = x509.load_der_x509_certificate(base64.b64decode(material["certificate"]["rawBytes"]))
    annotations = {
        "dev.sigstore.cosign/certificate": certificate.public_bytes(serialization.Encoding.PEM).decode()
    }
    annotations[name] = value
    envelope = blob if blob is not None else json.dumps(KEYLESS["bundle"]["dsseEnvelope"]).encode()
    rule = IdentityRule(identity=KEYLESS["expected_identity"], issuer=KEYLESS["expected_issuer"])
    try:
        verify_attestation_layer(envelope, annotations, rule, KEYLESS["trusted_root"])
    except Rejected as rejected:
        assert "\n" not in rejected.reason


@pytest.mark.parametrize("text", ["{}", "nope", '{"mediaType": 5, "tlogs": "x"}'])
def test_an_unusable_trusted_root_is_one_line(text: str, tmp_path: Path) -> None:
    """sigstore's loader lists every missing field on lines of its own; the error names the first."""
    bundle, rule, digest = _keyless_case(KEYLESS["bundle"], tmp_path)
    assert rule.trusted_root is not None
    rule.trusted_root.write_text(text)
    with pytest.raises(MlociError) as caught:
        verify_bundle_file(bundle, rule, digest=digest)
    assert caught.value.exit_code == 2 and "cannot load the trusted root" in caught.value.message
    assert "\n" not in caught.value.message and "\\x0a" not in caught.value.message


@pytest.mark.parametrize(
    ("change", "advice"),
    [
        ({"identity": "someone@example.com"}, "verify with the identity and issuer its certificate names"),
        ({"digest": "sha256:" + "1" * 64}, "the signature is for another artifact"),
        ({"root": "ctlogs"}, "is the sigstore trusted root the signer used"),
    ],
)
def test_verification_failures_say_what_to_do(change: dict[str, str], advice: str, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    bundle, rule, digest = _keyless_case(KEYLESS["bundle"], tmp_path)
    if "identity" in change:
        rule = TrustRule.of(
            None,
            IdentityRule(identity=change["identity"], issuer=KEYLESS["expected_issuer"]),
            rule.trusted_root,
        )
    if "digest" in change:
        digest = Digest.parse(change["digest"])
    if "root" in change:
        assert rule.trusted_root is not None
        other = copy.deepcopy(KEYLESS["trusted_root"])
        stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
        spki = stranger.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for log in other["ctlogs"]:
            log["publicKey"]["rawBytes"] = base64.b64encode(spki).decode()
        rule.trusted_root.write_text(json.dumps(other))
    with pytest.raises(MlociError) as caught:
        verify_bundle_file(bundle, rule, digest=digest)
    assert caught.value.exit_code == 6 and caught.value.hint is not None and advice in caught.value.hint
