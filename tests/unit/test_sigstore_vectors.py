"""Real sigstore bundles and cosign signatures verify offline, and fail when anything is changed.

The vectors (../shared/interop, beside the repository as on CI; each names its public source)
are output of cosign v3, the sigstore conformance suite and early cosign. Every one must verify
through :func:`mloci.ops.sign.verify_bundle_file` (what ``mloci verify-bundle`` runs), and must be
rejected when one byte of payload, signature, certificate, inclusion proof or checkpoint changes,
when the identity or issuer differs, with another trust root, or for another subject digest.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from helpers import SHARED

from mloci.errors import IntegrityError, UsageError
from mloci.trust.cosign import check_payload
from mloci.trust.keyless import IdentityRule
from mloci.trust.keys import public_key_from_pem, verifies
from mloci.trust.verifier import TrustRule, verify_bundle_file
from mloci.types.digest import Digest

DATA = SHARED / "interop"
SIGSTORE = DATA / "sigstore"
KEYED_DSSE = "02-cosign-v3.1.3-image-sign-keyed-dsse-unpacker.json"
KEYLESS_IMAGE = "04-cosign-v3-image-sign-keyless-dsse-kubewarden.json"
KEYLESS_SLSA = "06-conformance-keyless-dsse-intoto-v0.3.json"
KEYED_BLOB = "12-cosign-v3-sign-blob-keyed-message-rekor-tsa.json"
LEGACY_ATT = "16-cosign-legacy-att-keyed-dsse-envelopes-kyverno.json"
ALL_BUNDLES = (KEYED_DSSE, KEYLESS_IMAGE, KEYLESS_SLSA, KEYED_BLOB)

pytest.importorskip("sigstore", reason="keyless verification needs the sigstore extra")


def vector(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((SIGSTORE / name).read_text())
    return value


def bundle_text(v: dict[str, Any]) -> str:
    return v.get("bundle_raw") or json.dumps(v["bundle"])


class Case:
    """One vector laid out as files, with the verification it expects."""

    def __init__(self, name: str, tmp: Path) -> None:
        self.v = vector(name)
        self.tmp = tmp
        self.document: dict[str, Any] = json.loads(bundle_text(self.v))
        self.raw = bundle_text(self.v)
        self.root: dict[str, Any] | None = copy.deepcopy(self.v.get("trusted_root"))
        self.digest = Digest.parse("sha256:" + self.v["subject"]["sha256"])
        self.artifact: bytes | None = (
            base64.b64decode(self.v["subject"]["bytes_b64"]) if self.v["subject"].get("bytes_b64") else None
        )
        self.identity = self.v.get("expected_identity")
        self.issuer = self.v.get("expected_issuer")

    def rule(self, **override: Any) -> TrustRule:
        root = None
        if self.root is not None:
            root = self.tmp / "trusted_root.json"
            root.write_text(json.dumps(self.root))
        if self.identity is None:
            key = self.tmp / "key.pub"
            key.write_text(self.v["public_key_pem"])
            return TrustRule.of(key, None, root)
        identity = IdentityRule(
            identity=override.get("identity", self.identity),
            issuer=override.get("issuer", self.issuer),
            identity_regexp=override.get("identity_regexp"),
            issuer_regexp=override.get("issuer_regexp"),
        )
        return TrustRule.of(None, identity, root)

    def run(self, *, raw: str | None = None, digest: Digest | None = None, **override: Any) -> Any:
        path = self.tmp / "bundle.sigstore.json"
        path.write_text(raw if raw is not None else self.raw)
        rule = self.rule(**override)
        if self.artifact is not None and digest is None:
            artifact = self.tmp / "artifact"
            artifact.write_bytes(self.artifact)
            return verify_bundle_file(path, rule, artifact=artifact).verified
        return verify_bundle_file(path, rule, digest=digest or self.digest).verified

    def mutated(self, change: Callable[[dict[str, Any]], None]) -> str:
        document = copy.deepcopy(self.document)
        change(document)
        return json.dumps(document)


def flip_b64(value: str, index: int = -8) -> str:
    """``value`` (base64) with one byte of its decoded content changed."""
    data = bytearray(base64.b64decode(value))
    data[index] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


@pytest.mark.parametrize("name", ALL_BUNDLES)
def test_every_real_bundle_verifies(name: str, tmp_path: Path) -> None:
    case = Case(name, tmp_path)
    verified = case.run()
    assert verified.digest == case.digest
    if case.identity:
        assert verified.signer == case.identity and verified.issuer == case.issuer
    if case.document["verificationMaterial"].get("tlogEntries"):
        assert verified.log is not None  # the Rekor entry was checked against the trusted root


def _payload(d: dict[str, Any]) -> None:
    d["dsseEnvelope"]["payload"] = flip_b64(d["dsseEnvelope"]["payload"], -3)


def _dsse_sig(d: dict[str, Any]) -> None:
    d["dsseEnvelope"]["signatures"][0]["sig"] = flip_b64(d["dsseEnvelope"]["signatures"][0]["sig"])


def _message_sig(d: dict[str, Any]) -> None:
    d["messageSignature"]["signature"] = flip_b64(d["messageSignature"]["signature"])


def _message_digest(d: dict[str, Any]) -> None:
    d["messageSignature"]["messageDigest"]["digest"] = flip_b64(
        d["messageSignature"]["messageDigest"]["digest"]
    )


def _certificate(d: dict[str, Any]) -> None:
    cert = d["verificationMaterial"]["certificate"]
    cert["rawBytes"] = flip_b64(cert["rawBytes"], -20)  # inside the CA's signature


def _proof_hash(d: dict[str, Any]) -> None:
    proof = d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["hashes"][0] = flip_b64(proof["hashes"][0])


def _proof_root(d: dict[str, Any]) -> None:
    proof = d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["rootHash"] = flip_b64(proof["rootHash"])


def _checkpoint(d: dict[str, Any]) -> None:
    proof = d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    envelope: str = proof["checkpoint"]["envelope"]
    head, sep, signature = envelope.partition("\n\n")
    name, _, encoded = signature.strip().rpartition(" ")
    proof["checkpoint"]["envelope"] = head + sep + name + " " + flip_b64(encoded, -5) + "\n"


def _body(d: dict[str, Any]) -> None:
    entry = d["verificationMaterial"]["tlogEntries"][0]
    entry["canonicalizedBody"] = flip_b64(entry["canonicalizedBody"], 40)


TAMPERS: dict[str, list[tuple[str, Callable[[dict[str, Any]], None]]]] = {
    KEYED_DSSE: [("payload", _payload), ("signature", _dsse_sig)],
    KEYLESS_IMAGE: [
        ("payload", _payload),
        ("signature", _dsse_sig),
        ("certificate", _certificate),
        ("inclusion proof hash", _proof_hash),
        ("inclusion proof root", _proof_root),
        ("checkpoint", _checkpoint),
        ("log entry body", _body),
    ],
    KEYLESS_SLSA: [
        ("payload", _payload),
        ("signature", _dsse_sig),
        ("certificate", _certificate),
        ("inclusion proof hash", _proof_hash),
        ("inclusion proof root", _proof_root),
        ("checkpoint", _checkpoint),
        ("log entry body", _body),
    ],
    KEYED_BLOB: [
        ("signature", _message_sig),
        ("message digest", _message_digest),
        ("inclusion proof hash", _proof_hash),
        ("inclusion proof root", _proof_root),
        ("checkpoint", _checkpoint),
        ("log entry body", _body),
    ],
}


@pytest.mark.parametrize(
    ("name", "what", "change"),
    [(name, what, change) for name, changes in TAMPERS.items() for what, change in changes],
    ids=[f"{name[:2]}-{what}" for name, changes in TAMPERS.items() for what, _ in changes],
)
def test_one_changed_byte_fails(
    name: str, what: str, change: Callable[[dict[str, Any]], None], tmp_path: Path
) -> None:
    case = Case(name, tmp_path)
    with pytest.raises(IntegrityError):
        case.run(raw=case.mutated(change))


@pytest.mark.parametrize("name", ALL_BUNDLES)
def test_another_subject_digest_fails(name: str, tmp_path: Path) -> None:
    case = Case(name, tmp_path)
    other = Digest.parse("sha256:" + "0" * 63 + "1")
    with pytest.raises(IntegrityError, match="does not verify for sha256:0000"):
        case.run(digest=other)


@pytest.mark.parametrize("name", [KEYLESS_IMAGE, KEYLESS_SLSA])
@pytest.mark.parametrize(
    "override",
    [
        {"identity": "https://github.com/evil/repo/.github/workflows/release.yml@refs/heads/main"},
        {"issuer": "https://accounts.google.com"},
        {"identity": None, "identity_regexp": "https://github.com/evil/.*"},
        {"issuer": None, "issuer_regexp": "https://gitlab\\.com"},
        # A regexp must match the whole identity, not a part of it (as cosign).
        {"identity": None, "identity_regexp": "https://github.com/"},
    ],
)
def test_another_identity_or_issuer_fails(name: str, override: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match=r"identity|issuer"):
        Case(name, tmp_path).run(**override)


@pytest.mark.parametrize("name", [KEYLESS_IMAGE, KEYLESS_SLSA])
def test_identity_and_issuer_regexps_match_like_cosign(name: str, tmp_path: Path) -> None:
    verified = Case(name, tmp_path).run(
        identity=None,
        identity_regexp=r"https://github\.com/.*",
        issuer=None,
        issuer_regexp=r".*\.githubusercontent\.com",
    )
    assert verified.signer.startswith("https://github.com/")


def _self_signed(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evil")]
    )
    now = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=36500))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA384())
    )
    return key, cert


def _foreign_root(root: dict[str, Any]) -> dict[str, Any]:
    """The same trusted root with another Fulcio CA and another Rekor key: nothing of the original signs."""
    other = copy.deepcopy(root)
    _, ca = _self_signed("sigstore")
    der = base64.b64encode(ca.public_bytes(serialization.Encoding.DER)).decode()
    for authority in other["certificateAuthorities"]:
        authority["certChain"] = {"certificates": [{"rawBytes": der}]}
    rekor_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = rekor_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for log in other["tlogs"]:
        log["publicKey"]["rawBytes"] = base64.b64encode(spki).decode()
    return other


@pytest.mark.parametrize("name", [KEYLESS_IMAGE, KEYLESS_SLSA, KEYED_BLOB])
def test_another_trust_root_fails(name: str, tmp_path: Path) -> None:
    case = Case(name, tmp_path)
    assert case.root is not None
    case.root = _foreign_root(case.root)
    with pytest.raises(IntegrityError):
        case.run()


def test_key_based_bundles_fail_with_another_key(tmp_path: Path) -> None:
    for name in (KEYED_DSSE, KEYED_BLOB):
        case = Case(name, tmp_path)
        case.v["public_key_pem"] = vector(LEGACY_ATT)["public_key_pem"]
        with pytest.raises(IntegrityError, match="signature does not match"):
            case.run()


def test_keyless_bundle_with_a_key_and_key_bundle_with_an_identity_are_refused(tmp_path: Path) -> None:
    keyless = Case(KEYLESS_IMAGE, tmp_path)
    keyless.identity = None
    keyless.v["public_key_pem"] = vector(KEYED_DSSE)["public_key_pem"]
    with pytest.raises(IntegrityError, match="certificate-identity"):
        keyless.run()
    keyed = Case(KEYED_DSSE, tmp_path)
    keyed.identity, keyed.issuer = "someone@example.com", "https://accounts.google.com"
    with pytest.raises(IntegrityError, match="verify it with --key"):
        keyed.run()


def test_identity_options_must_be_complete() -> None:
    with pytest.raises(UsageError):
        IdentityRule(identity="a")
    with pytest.raises(UsageError):
        IdentityRule(identity="a", identity_regexp="b", issuer="c")
    with pytest.raises(UsageError, match="regular expression"):
        IdentityRule(identity_regexp="(", issuer="c")


# -- legacy .att envelopes (early cosign) --------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1, 2])
def test_legacy_att_envelopes_verify_and_fail_when_changed(index: int, tmp_path: Path) -> None:
    v = vector(LEGACY_ATT)
    key = tmp_path / "key.pub"
    key.write_text(v["public_key_pem"])
    rule = TrustRule.of(key)
    digest = Digest.parse("sha256:" + v["subject"]["sha256"])
    raw = v["dsse_envelopes_raw"][index]
    path = tmp_path / "envelope.json"
    path.write_text(raw)
    verified = verify_bundle_file(path, rule, digest=digest).verified
    assert verified.predicate_type == json.loads(raw)["payloadType"]  # early cosign's quirk
    document = json.loads(raw)
    for field in ("payload", "sig"):
        changed = copy.deepcopy(document)
        if field == "payload":
            changed["payload"] = flip_b64(changed["payload"], -3)
        else:
            changed["signatures"][0]["sig"] = flip_b64(changed["signatures"][0]["sig"])
        path.write_text(json.dumps(changed))
        with pytest.raises(IntegrityError):
            verify_bundle_file(path, rule, digest=digest)
    path.write_text(raw)
    with pytest.raises(IntegrityError, match="subject"):
        verify_bundle_file(path, rule, digest=Digest.parse("sha256:" + "1" * 64))


# -- legacy cosign .sig signatures ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["bleala-postfix-key.json", "sigstore-rs-busybox-key.json"])
def test_legacy_cosign_signatures_verify_and_bind_their_digest(name: str) -> None:
    v = json.loads((DATA / "cosign" / name).read_text())
    key = public_key_from_pem(v["public_key_pem"].encode())
    payload = base64.b64decode(v["payload_b64"])
    signature = base64.b64decode(v["signature_b64"])
    assert verifies(key, signature, payload)
    assert check_payload(payload, Digest.parse(v["manifest_digest"]), {}).docker_reference
    changed = bytearray(payload)
    changed[-3] ^= 0x01
    assert not verifies(key, signature, bytes(changed))
    with pytest.raises(Exception, match="not this artifact"):
        check_payload(payload, Digest.parse("sha256:" + "2" * 64), {})


def test_values_from_bundles_reach_the_terminal_without_control_characters() -> None:
    from mloci.trust import shown

    assert shown("https://github.com/org/repo") == "https://github.com/org/repo"
    assert "\x1b" not in shown("evil\x1b[2J\x07name") and "\\x1b" in shown("evil\x1b[2J")
    assert shown("x" * 500).endswith("…") and len(shown("x" * 500)) == 201
    with pytest.raises(Exception, match=r"signs sha256:\\x1b"):
        check_payload(
            b'{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:\\u001b[2J"},'
            b'"type":"cosign container image signature"},"optional":null}',
            Digest.parse("sha256:" + "2" * 64),
            {},
        )


def test_unknown_log_entry_versions_get_a_clear_reason(tmp_path: Path) -> None:
    case = Case(KEYED_BLOB, tmp_path)
    entry = case.document["verificationMaterial"]["tlogEntries"][0]
    entry["kindVersion"]["version"] = "0.0.3"
    with pytest.raises(IntegrityError, match=r"neither Rekor v1 \(0.0.1\) nor v2"):
        case.run(raw=json.dumps(case.document))


@pytest.mark.parametrize("seconds", [10**20, -(10**20), 2**63])
def test_an_integrated_time_out_of_range_is_a_rejection_not_a_crash(seconds: int, tmp_path: Path) -> None:
    case = Case(KEYED_BLOB, tmp_path)
    case.document["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = str(seconds)
    with pytest.raises(IntegrityError, match="out of range"):
        case.run(raw=json.dumps(case.document))


# -- RFC 3161 timestamps -------------------------------------------------------------------------


def _timestamps(d: dict[str, Any]) -> list[dict[str, str]]:
    items: list[dict[str, str]] = d["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    return items


def test_key_based_bundle_timestamp_is_verified_and_reported(tmp_path: Path) -> None:
    verified = Case(KEYED_BLOB, tmp_path).run()
    assert [t.isoformat() for t in verified.timestamps] == ["2025-10-31T12:17:32+00:00"]
    assert verified.to_json()["timestamps"] == ["2025-10-31T12:17:32+00:00"]


@pytest.mark.parametrize("name", [KEYED_BLOB, KEYLESS_IMAGE])
@pytest.mark.parametrize("offset", [-10, -100, 150, 300, 400])
def test_one_changed_timestamp_byte_fails(name: str, offset: int, tmp_path: Path) -> None:
    """Anywhere in the token: TSTInfo (imprint, time), signed attributes, signature, signer id."""
    case = Case(name, tmp_path)

    def change(d: dict[str, Any]) -> None:
        item = _timestamps(d)[0]
        item["signedTimestamp"] = flip_b64(item["signedTimestamp"], offset)

    with pytest.raises(IntegrityError, match=r"timestamp|sigstore"):
        case.run(raw=case.mutated(change))


def test_timestamp_of_another_signature_fails(tmp_path: Path) -> None:
    case = Case(KEYED_BLOB, tmp_path)
    other = _timestamps(vector(KEYLESS_IMAGE)["bundle"])[0]["signedTimestamp"]

    def change(d: dict[str, Any]) -> None:
        _timestamps(d)[0]["signedTimestamp"] = other  # a genuine token from the same TSA

    with pytest.raises(IntegrityError, match="timestamps another signature"):
        case.run(raw=case.mutated(change))


def test_duplicate_timestamps_fail(tmp_path: Path) -> None:
    case = Case(KEYED_BLOB, tmp_path)
    with pytest.raises(IntegrityError, match="appears twice"):
        case.run(raw=case.mutated(lambda d: _timestamps(d).append(dict(_timestamps(d)[0]))))


def test_timestamp_needs_an_authority_of_the_trusted_root(tmp_path: Path) -> None:
    case = Case(KEYED_BLOB, tmp_path)
    assert case.root is not None
    case.root["timestampAuthorities"] = []
    with pytest.raises(IntegrityError, match="lists no timestamp authority"):
        case.run()
    case = Case(KEYED_BLOB, tmp_path)
    assert case.root is not None
    _, ca = _self_signed("sigstore-tsa-selfsigned")
    der = base64.b64encode(ca.public_bytes(serialization.Encoding.DER)).decode()
    case.root["timestampAuthorities"][0]["certChain"]["certificates"][-1] = {"rawBytes": der}
    with pytest.raises(IntegrityError, match="does not verify with the authority"):
        case.run()


def test_timestamp_outside_the_authority_validity_window_fails(tmp_path: Path) -> None:
    case = Case(KEYED_BLOB, tmp_path)
    assert case.root is not None
    case.root["timestampAuthorities"][0]["validFor"] = {"start": "2025-11-01T00:00:00Z"}
    with pytest.raises(IntegrityError, match="was not a trusted authority at 2025-10-31"):
        case.run()
    case.root["timestampAuthorities"][0]["validFor"] = {
        "start": "2025-07-04T00:00:00Z",
        "end": "2025-10-31T12:17:32Z",  # closed interval: the end itself still counts
    }
    assert case.run().timestamps


def test_timestamps_without_the_rfc3161_package_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from mloci.errors import UnsupportedError

    monkeypatch.setitem(sys.modules, "rfc3161_client", None)
    with pytest.raises(UnsupportedError) as caught:
        Case(KEYED_BLOB, tmp_path).run()
    assert caught.value.exit_code == 10 and "mloci[sigstore]" in (caught.value.hint or "")


def test_timestamps_are_not_checked_without_a_trusted_root(tmp_path: Path) -> None:
    """As transparency-log entries: with only a key, the signature is what is verified."""
    case = Case(KEYED_BLOB, tmp_path)
    case.root = None

    def change(d: dict[str, Any]) -> None:
        item = _timestamps(d)[0]
        item["signedTimestamp"] = flip_b64(item["signedTimestamp"], -10)

    verified = case.run(raw=case.mutated(change))
    assert verified.timestamps == () and verified.log is None


# -- Rekor v2 entries in key-based bundles --------------------------------------------------------


def _leaf(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def _tree(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _tree(leaves[:split]) + _tree(leaves[split:])).digest()


def _path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 audit path for ``index``, leaf to root."""
    if len(leaves) == 1:
        return []
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < split:
        return [*_path(index, leaves[:split]), _tree(leaves[split:])]
    return [*_path(index - split, leaves[split:]), _tree(leaves[:split])]


class RekorV2Log:
    """A Rekor v2 shard for tests: an Ed25519 checkpoint key, C2SP signed-note checkpoints, RFC 6962 proofs."""

    origin = "log-test.rekor.example"

    def __init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.log_id = hashlib.sha256(self.origin.encode() + b"\n\x01" + raw).digest()  # signed-note key id

    def trust(self, root: dict[str, Any]) -> None:
        spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        root["tlogs"].append(
            {
                "baseUrl": f"https://{self.origin}",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64.b64encode(spki).decode(),
                    "keyDetails": "PKIX_ED25519",
                    "validFor": {"start": "2025-09-01T00:00:00Z"},
                },
                "logId": {"keyId": base64.b64encode(self.log_id).decode()},
            }
        )

    def entry(self, body: dict[str, Any], index: int = 5, size: int = 9) -> dict[str, Any]:
        canonical = json.dumps(body, separators=(",", ":")).encode()
        leaves = [hashlib.sha256(bytes([i])).digest() for i in range(size)]
        leaves[index] = _leaf(canonical)
        root = base64.b64encode(_tree(leaves)).decode()
        note = f"{self.origin}\n{size}\n{root}\n"
        signature = base64.b64encode(self.log_id[:4] + self.key.sign(note.encode())).decode()
        return {
            "logIndex": str(index),
            "logId": {"keyId": base64.b64encode(self.log_id).decode()},
            "kindVersion": {"kind": body["kind"], "version": "0.0.2"},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": root,
                "treeSize": str(size),
                "hashes": [base64.b64encode(h).decode() for h in _path(index, leaves)],
                "checkpoint": {"envelope": f"{note}\n\u2014 {self.origin} {signature}\n"},
            },
            "canonicalizedBody": base64.b64encode(canonical).decode(),
        }


def _v2_case(tmp_path: Path, **body_override: Any) -> tuple[Case, RekorV2Log]:
    """Vector 12 (a real key signature and a real TSA timestamp) logged in a Rekor v2 test shard."""
    case = Case(KEYED_BLOB, tmp_path)
    assert case.root is not None
    log = RekorV2Log()
    log.trust(case.root)
    message = case.document["messageSignature"]
    key = serialization.load_pem_public_key(case.v["public_key_pem"].encode())
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    rekord: dict[str, Any] = {
        "data": {"algorithm": "SHA2_256", "digest": message["messageDigest"]["digest"]},
        "signature": {
            "content": message["signature"],
            "verifier": {
                "publicKey": {"rawBytes": base64.b64encode(spki).decode()},
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            },
        },
    }
    rekord.update(body_override)
    body = {"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": rekord}}
    case.document["verificationMaterial"]["tlogEntries"] = [log.entry(body)]
    return case, log


def test_key_based_bundle_with_a_rekor_v2_entry_verifies(tmp_path: Path) -> None:
    case, log = _v2_case(tmp_path)
    verified = case.run(raw=json.dumps(case.document))
    assert verified.log is not None and verified.log.log_index == 5
    assert verified.log.integrated_time is None and verified.log.log_url == f"https://{log.origin}"
    assert verified.to_json()["transparencyLog"]["integratedTime"] is None


REKOR_V2_TAMPERS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("inclusion proof hash", _proof_hash),
    ("inclusion proof root", _proof_root),
    ("checkpoint", _checkpoint),
    ("log entry body", _body),
    ("signature", _message_sig),
    ("message digest", _message_digest),
    (
        "checkpoint origin",
        lambda d: d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"].update(
            envelope=d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"][
                "envelope"
            ].replace("log-test.rekor.example\n", "log-evil.rekor.example\n", 1)
        ),
    ),
    (
        "a SET on a v2 entry",
        lambda d: d["verificationMaterial"]["tlogEntries"][0].update(
            inclusionPromise={"signedEntryTimestamp": "MEUCIQ=="}
        ),
    ),
]


@pytest.mark.parametrize(("what", "change"), REKOR_V2_TAMPERS, ids=[w for w, _ in REKOR_V2_TAMPERS])
def test_rekor_v2_entry_fails_when_one_byte_changes(
    what: str, change: Callable[[dict[str, Any]], None], tmp_path: Path
) -> None:
    case, _ = _v2_case(tmp_path)
    case.document = json.loads(json.dumps(case.document))
    with pytest.raises(IntegrityError):
        case.run(raw=case.mutated(change))


def test_rekor_v2_entry_must_log_this_signature_and_key(tmp_path: Path) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = other_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    case, _ = _v2_case(
        tmp_path,
        signature={
            "content": Case(KEYED_BLOB, tmp_path).document["messageSignature"]["signature"],
            "verifier": {"publicKey": {"rawBytes": base64.b64encode(spki).decode()}},
        },
    )
    with pytest.raises(IntegrityError, match="another key"):
        case.run(raw=json.dumps(case.document))
    case, _ = _v2_case(
        tmp_path, data={"algorithm": "SHA2_256", "digest": base64.b64encode(bytes(32)).decode()}
    )
    with pytest.raises(IntegrityError, match="another artifact hash"):
        case.run(raw=json.dumps(case.document))


def test_rekor_v2_first_entry_of_a_shard_omits_its_zero_index(tmp_path: Path) -> None:
    """protojson leaves out zero values: index 0 has no logIndex, a one-entry tree no hashes."""
    case, log = _v2_case(tmp_path)
    entry = case.document["verificationMaterial"]["tlogEntries"][0]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    first = log.entry(body, index=0, size=1)
    del first["logIndex"], first["inclusionProof"]["logIndex"], first["inclusionProof"]["hashes"]
    case.document["verificationMaterial"]["tlogEntries"] = [first]
    verified = case.run(raw=json.dumps(case.document))
    assert verified.log is not None and verified.log.log_index == 0


def test_rekor_v2_log_key_must_be_valid_at_the_signed_time(tmp_path: Path) -> None:
    case, _ = _v2_case(tmp_path)
    assert case.root is not None
    case.root["tlogs"][-1]["publicKey"]["validFor"] = {"start": "2025-11-01T00:00:00Z"}
    with pytest.raises(IntegrityError, match="not valid at the signed time 2025-10-31"):
        case.run(raw=json.dumps(case.document))


def test_keyless_without_the_sigstore_package_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from mloci.errors import UnsupportedError

    for name in [m for m in sys.modules if m == "sigstore" or m.startswith("sigstore.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sigstore", None)
    monkeypatch.setitem(sys.modules, "sigstore.verify", None)
    with pytest.raises(UnsupportedError) as caught:
        Case(KEYLESS_IMAGE, tmp_path).run()
    assert caught.value.exit_code == 10 and "mloci[sigstore]" in (caught.value.hint or "")
