"""keygen / sign / verify: cosign-compatible key-based signatures, against a real registry and the local store.

The commands run through the real CLI entry point (exit codes, one-line errors); they are
registered in the command table here so the tests do not depend on app.py listing them.
The compatibility test builds a cosign signature by hand from the cosign signature spec,
with its own minimal encoder, independent of mloci's signing code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path
from string import Template

import pytest
import urllib3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from helpers import Registry, Runner

from mloci.ops.sign import simple_signing_payload
from mloci.types import Digest

PASSWORD = "correct horse battery staple"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"


@pytest.fixture(autouse=True)
def no_ambient_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOCI_KEY_PASSWORD", raising=False)


def keygen(mloci: Runner, monkeypatch: pytest.MonkeyPatch, prefix: Path, password: str = PASSWORD) -> Path:
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", password)
    result = mloci("keygen", "--output-key-prefix", prefix)
    assert result.exit_code == 0, result.stderr
    return prefix.with_name(prefix.name + ".key")


def pub(key: Path) -> Path:
    return key.with_suffix(".pub")


def push(mloci: Runner, bundle: Path, repo: str | None = None) -> str:
    result = mloci("push", bundle, *([repo] if repo else []), "--json")
    assert result.exit_code == 0, result.stderr
    digest: str = json.loads(result.stdout)["digest"]
    return digest


def bump_version(bundle: Path, version: str) -> None:
    path = bundle / "manifest.json"
    document = json.loads(path.read_text())
    document["version"] = version
    path.write_text(json.dumps(document, indent=2))


def sig_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def http_get(registry: Registry, path: str, accept: str = OCI_MANIFEST) -> bytes:
    response = urllib3.request("GET", f"http://{registry.host}{path}", headers={"Accept": accept})
    assert response.status == 200, response.data
    return response.data


def http_put_blob(registry: Registry, repo: str, data: bytes) -> str:
    """A monolithic blob upload (distribution spec: POST, then PUT with the digest)."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = urllib3.request("POST", f"http://{registry.host}/v2/{repo}/blobs/uploads/")
    assert started.status == 202, started.data
    location = started.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry.host}{location}"
    joiner = "&" if "?" in location else "?"
    done = urllib3.request(
        "PUT",
        f"{location}{joiner}digest={digest}",
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status == 201, done.data
    return digest


def http_put_manifest(registry: Registry, repo: str, tag: str, data: bytes, media_type: str) -> None:
    done = urllib3.request(
        "PUT",
        f"http://{registry.host}/v2/{repo}/manifests/{tag}",
        body=data,
        headers={"Content-Type": media_type},
    )
    assert done.status == 201, done.data


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- keygen and keys ---------------------------------------------------------------------------


def test_keygen_writes_an_encrypted_pkcs8_key_0600_and_a_spki_public_key(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = keygen(mloci, monkeypatch, tmp_path / "team")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert pub(key).read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    private = serialization.load_pem_private_key(key.read_bytes(), password=PASSWORD.encode())
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1"
    public = serialization.load_pem_public_key(pub(key).read_bytes())
    assert public.public_numbers() == private.public_key().public_numbers()
    assert not list(tmp_path.glob(".*.tmp"))

    before = key.read_bytes()
    again = mloci("keygen", "--output-key-prefix", tmp_path / "team")
    assert again.exit_code == 7
    assert "already exists" in one_line_error(again.stderr)
    assert key.read_bytes() == before


def test_keygen_needs_a_passphrase_and_refuses_unencrypted_keys_unless_asked(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No MLOCI_KEY_PASSWORD and no terminal to ask on.
    result = mloci("keygen", "--output-key-prefix", tmp_path / "a")
    assert result.exit_code == 2
    assert "MLOCI_KEY_PASSWORD" in one_line_error(result.stderr)
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "")
    result = mloci("keygen", "--output-key-prefix", tmp_path / "a")
    assert result.exit_code == 2
    assert "unencrypted" in one_line_error(result.stderr)
    assert not list(tmp_path.iterdir())
    result = mloci("keygen", "--output-key-prefix", tmp_path / "a", "--allow-unencrypted")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "a.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE((tmp_path / "a.key").stat().st_mode) == 0o600


def test_wrong_or_missing_passphrase_is_one_line_exit_2_without_the_secret(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    push(mloci, bundle, repo)
    key = keygen(mloci, monkeypatch, tmp_path / "mloci")
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "not the passphrase")
    result = mloci("sign", f"{repo}:1.0.0", "--key", key)
    assert result.exit_code == 2
    line = one_line_error(result.stderr)
    assert "wrong passphrase" in line
    assert "not the passphrase" not in result.stderr + result.stdout
    assert PASSWORD not in result.stderr + result.stdout

    monkeypatch.delenv("MLOCI_KEY_PASSWORD")
    result = mloci("sign", f"{repo}:1.0.0", "--key", key)
    assert result.exit_code == 2
    assert "MLOCI_KEY_PASSWORD" in one_line_error(result.stderr)


def test_keys_that_are_not_ecdsa_p256_are_refused_in_one_line(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    push(mloci, bundle, repo)
    p384 = ec.generate_private_key(ec.SECP384R1())
    key = tmp_path / "p384.key"
    key.write_bytes(
        p384.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    result = mloci("sign", f"{repo}:1.0.0", "--key", key)
    assert result.exit_code == 2
    assert "P-256" in one_line_error(result.stderr)

    rsa_pub = tmp_path / "rsa.pub"
    rsa_pub.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    result = mloci("verify", f"{repo}:1.0.0", "--key", rsa_pub)
    assert result.exit_code == 2
    assert "P-256" in one_line_error(result.stderr)

    private_as_public = mloci("verify", f"{repo}:1.0.0", "--key", key)
    assert private_as_public.exit_code == 2
    assert "private key" in one_line_error(private_as_public.stderr)


# -- the payload, byte for byte --------------------------------------------------------------------


def test_payload_bytes_equal_what_cosign_serializes() -> None:
    digest = Digest.parse("sha256:" + "d34db33f" * 8)
    # Expected bytes from sigstore/sigstore pkg/signature/payload (Go encoding/json of the struct).
    assert simple_signing_payload("example.com/test/image", digest, {}) == (
        b'{"critical":{"identity":{"docker-reference":"example.com/test/image"},'
        b'"image":{"docker-manifest-digest":"sha256:' + b"d34db33f" * 8 + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    assert simple_signing_payload("r/x", digest, {"z": "1", "a": "<b&c>", "é": "ü"}).endswith(
        '"optional":{"a":"\\u003cb\\u0026c\\u003e","z":"1","é":"ü"}}'.encode()
    )


# -- sign and verify against a registry ------------------------------------------------------------


def test_sign_then_verify_round_trip_in_cosign_layout(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo_path = "ml/churn-model"
    repo = f"{registry.host}/{repo_path}"
    digest = push(mloci, bundle, repo)
    key = keygen(mloci, monkeypatch, tmp_path / "mloci")

    signed = mloci("sign", f"{repo}:1.0.0", "--key", key, "--format", "legacy", "--json")
    assert signed.exit_code == 0, signed.stderr
    info = json.loads(signed.stdout)
    assert info["digest"] == digest and info["unchanged"] is False and info["signatures"] == 1
    assert PASSWORD not in signed.stdout + signed.stderr

    # What cosign expects: an OCI manifest tagged sha256-<hex>.sig with one simple-signing layer.
    raw = http_get(registry, f"/v2/{repo_path}/manifests/{sig_tag(digest)}")
    manifest = json.loads(raw)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["mediaType"] == OCI_CONFIG
    [layer] = manifest["layers"]
    assert layer["mediaType"] == SIMPLE_SIGNING
    payload = http_get(registry, f"/v2/{repo_path}/blobs/{layer['digest']}", accept="*/*")
    assert (
        payload
        == (
            Template(
                '{"critical":{"identity":{"docker-reference":"$repo"},"image":{"docker-manifest-digest":"$digest"},'
                '"type":"cosign container image signature"},"optional":null}'
            ).substitute(repo=repo, digest=digest)
        ).encode()
    )
    public = serialization.load_pem_public_key(pub(key).read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(layer["annotations"][SIG_ANNOTATION]), payload, ec.ECDSA(hashes.SHA256()))
    config = http_get(registry, f"/v2/{repo_path}/blobs/{manifest['config']['digest']}", accept="*/*")
    assert (
        config
        == (
            Template(
                '{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],'
                '"os":"","rootfs":{"type":"layers","diff_ids":["$layer"]},"config":{}}'
            ).substitute(layer=layer["digest"])
        ).encode()
    )

    for ref in (f"{repo}:1.0.0", f"{repo}@{digest}"):
        verified = mloci("verify", ref, "--key", pub(key), "--json")
        assert verified.exit_code == 0, verified.stderr
        result = json.loads(verified.stdout)
        assert result["digest"] == digest and len(result["signatures"]) == 1
    assert mloci("verify", f"{repo}:1.0.0", "--key", pub(key)).stdout.strip() == f"{repo}:1.0.0@{digest}"

    # Signing the same payload with the same key again adds nothing.
    again = mloci("sign", f"{repo}@{digest}", "--key", key, "--format", "legacy", "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["unchanged"] is True
    assert len(json.loads(http_get(registry, f"/v2/{repo_path}/manifests/{sig_tag(digest)}"))["layers"]) == 1


def test_a_second_key_appends_a_signature_and_both_verify(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push(mloci, bundle, repo)
    alice = keygen(mloci, monkeypatch, tmp_path / "alice")
    bob = keygen(mloci, monkeypatch, tmp_path / "bob", password="bob's passphrase")
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", PASSWORD)
    assert (
        mloci("sign", f"{repo}:1.0.0", "--key", alice, "--format", "legacy", "-a", "by=alice").exit_code == 0
    )
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "bob's passphrase")
    signed = mloci("sign", f"{repo}:1.0.0", "--key", bob, "--format", "legacy", "-a", "by=bob", "--json")
    assert signed.exit_code == 0, signed.stderr
    assert json.loads(signed.stdout)["signatures"] == 2

    layers = json.loads(http_get(registry, f"/v2/ml/churn-model/manifests/{sig_tag(digest)}"))["layers"]
    assert [layer["mediaType"] for layer in layers] == [SIMPLE_SIGNING, SIMPLE_SIGNING]
    for key, who in ((alice, "alice"), (bob, "bob")):
        verified = mloci("verify", f"{repo}:1.0.0", "--key", pub(key), "-a", f"by={who}", "--json")
        assert verified.exit_code == 0, verified.stderr
        [signature] = json.loads(verified.stdout)["signatures"]
        assert signature["annotations"] == {"by": who}
    crossed = mloci("verify", f"{repo}:1.0.0", "--key", pub(bob), "-a", "by=alice")
    assert crossed.exit_code == 6


def test_verify_with_another_key_fails_with_exit_6(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push(mloci, bundle, repo)
    key = keygen(mloci, monkeypatch, tmp_path / "mloci")
    stranger = keygen(mloci, monkeypatch, tmp_path / "stranger")
    assert mloci("sign", f"{repo}:1.0.0", "--key", key).exit_code == 0
    result = mloci("verify", f"{repo}:1.0.0", "--key", pub(stranger))
    assert result.exit_code == 6
    assert one_line_error(result.stderr) == (
        f"mloci: error: no signature for {digest} verifies with stranger.pub: signature does not match"
        " (the bundle was altered or signed by another key)"
    )


def test_a_payload_tampered_in_registry_storage_fails_with_exit_6(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push(mloci, bundle, repo)
    key = keygen(mloci, monkeypatch, tmp_path / "mloci")
    assert mloci("sign", f"{repo}:1.0.0", "--key", key, "--format", "legacy").exit_code == 0
    [layer] = json.loads(http_get(registry, f"/v2/ml/churn-model/manifests/{sig_tag(digest)}"))["layers"]
    stored = registry.blob_data_path(layer["digest"])
    data = stored.read_bytes()
    stored.write_bytes(data.replace(b"cosign container", b"cosign-container"))  # same length
    result = mloci("verify", f"{repo}:1.0.0", "--key", pub(key))
    assert result.exit_code == 6
    assert "does not match its digest" in one_line_error(result.stderr)


def test_a_rewritten_sig_manifest_with_a_new_payload_fails_with_exit_6(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push(mloci, bundle, repo)
    key = keygen(mloci, monkeypatch, tmp_path / "mloci")
    assert (
        mloci("sign", f"{repo}:1.0.0", "--key", key, "--format", "legacy", "-a", "approved=no").exit_code == 0
    )
    manifest = json.loads(http_get(registry, f"/v2/ml/churn-model/manifests/{sig_tag(digest)}"))
    [layer] = manifest["layers"]
    payload = http_get(registry, f"/v2/ml/churn-model/blobs/{layer['digest']}", accept="*/*")
    forged = payload.replace(b'"approved":"no"', b'"approved":"yes"')
    layer["digest"] = http_put_blob(registry, "ml/churn-model", forged)
    layer["size"] = len(forged)
    http_put_manifest(
        registry, "ml/churn-model", sig_tag(digest), json.dumps(manifest).encode(), OCI_MANIFEST
    )
    result = mloci("verify", f"{repo}:1.0.0", "--key", pub(key), "-a", "approved=yes")
    assert result.exit_code == 6
    assert one_line_error(result.stderr).endswith("signature does not match")


def test_a_signature_copied_onto_another_artifact_fails_with_exit_6(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    signed_digest = push(mloci, bundle, repo)
    bump_version(bundle, "1.0.1")
    other_digest = push(mloci, bundle, repo)
    assert other_digest != signed_digest
    key = keygen(mloci, monkeypatch, tmp_path / "mloci")
    assert mloci("sign", f"{repo}:1.0.0", "--key", key, "--format", "legacy").exit_code == 0
    raw = http_get(registry, f"/v2/ml/churn-model/manifests/{sig_tag(signed_digest)}")
    http_put_manifest(registry, "ml/churn-model", sig_tag(other_digest), raw, OCI_MANIFEST)
    result = mloci("verify", f"{repo}:1.0.1", "--key", pub(key))
    assert result.exit_code == 6
    assert one_line_error(result.stderr).endswith(f"signs {signed_digest}, not this artifact")
    assert mloci("verify", f"{repo}:1.0.0", "--key", pub(key)).exit_code == 0


def test_a_required_annotation_must_be_signed(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    push(mloci, bundle, repo)
    key = keygen(mloci, monkeypatch, tmp_path / "mloci")
    assert mloci("sign", f"{repo}:1.0.0", "--key", key, "-a", "env=prod").exit_code == 0
    assert mloci("verify", f"{repo}:1.0.0", "--key", pub(key), "-a", "env=prod").exit_code == 0
    for required in ("env=staging", "team=ml"):
        result = mloci("verify", f"{repo}:1.0.0", "--key", pub(key), "-a", required)
        assert result.exit_code == 6
        assert one_line_error(result.stderr).endswith(f"lacks annotation {required}")
    bad = mloci("verify", f"{repo}:1.0.0", "--key", pub(key), "-a", "novalue")
    assert bad.exit_code == 2


def test_an_unsigned_artifact_fails_with_exit_6(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = push(mloci, bundle, repo)
    key = keygen(mloci, monkeypatch, tmp_path / "mloci")
    result = mloci("verify", f"{repo}:1.0.0", "--key", pub(key))
    assert result.exit_code == 6
    assert f"{repo}@{digest} is not signed" in one_line_error(result.stderr)


# -- compatibility: a cosign signature built by hand from the spec ------------------------------------


def cosign_payload(docker_reference: str, digest: str, digest_key: str, optional: str) -> bytes:
    """The simple-signing payload in Go's field order, written out by hand."""
    return (
        '{"critical":{"identity":{"docker-reference":"' + docker_reference + '"},'
        '"image":{"' + digest_key + '":"' + digest + '"},'
        '"type":"cosign container image signature"},"optional":' + optional + "}"
    ).encode()


def cosign_signature_manifest(config: tuple[str, int], layers: list[tuple[str, int, str]]) -> bytes:
    """The .sig manifest as go-containerregistry orders it (not mloci's sorted canonical form)."""
    layer_json = ",".join(
        Template(
            '{"mediaType":"$type","size":$size,"digest":"$digest","annotations":{"$key":"$signature"}}'
        ).substitute(type=SIMPLE_SIGNING, size=size, digest=digest, key=SIG_ANNOTATION, signature=signature)
        for digest, size, signature in layers
    )
    return (
        Template(
            '{"schemaVersion":2,"mediaType":"$type","config":{"mediaType":"$config_type","size":$size,'
            '"digest":"$digest"},"layers":[$layers]}'
        ).substitute(
            type=OCI_MANIFEST, config_type=OCI_CONFIG, size=config[1], digest=config[0], layers=layer_json
        )
    ).encode()


@pytest.mark.parametrize("digest_key", ["docker-manifest-digest", "Docker-manifest-digest"])
def test_a_hand_built_cosign_signature_verifies(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path, digest_key: str
) -> None:
    # "Docker-manifest-digest" is the spelling in the spec's example; Go's decoder matches keys
    # case-insensitively, so cosign accepts both.
    repo_path = "ml/churn-model"
    repo = f"{registry.host}/{repo_path}"
    digest = push(mloci, bundle, repo)
    bump_version(bundle, "2.0.0")
    other = push(mloci, bundle, repo)

    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = tmp_path / "cosign.pub"
    public_pem.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    def signed_layer(payload: bytes) -> tuple[str, int, str]:
        signature = base64.b64encode(private.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
        return http_put_blob(registry, repo_path, payload), len(payload), signature

    good = signed_layer(cosign_payload(repo, digest, digest_key, '{"sig":"cosign","run":"42"}'))
    wrong_subject = signed_layer(cosign_payload(repo, other, digest_key, "null"))
    config = (
        Template(
            '{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"},'
            '{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["$a","$b"]},'
            '"config":{}}'
        ).substitute(a=wrong_subject[0], b=good[0])
    ).encode()
    config_digest = http_put_blob(registry, repo_path, config)
    manifest = cosign_signature_manifest((config_digest, len(config)), [wrong_subject, good])
    http_put_manifest(registry, repo_path, sig_tag(digest), manifest, OCI_MANIFEST)

    verified = mloci("verify", f"{repo}:1.0.0", "--key", public_pem, "-a", "sig=cosign", "--json")
    assert verified.exit_code == 0, verified.stderr
    result = json.loads(verified.stdout)
    assert result["checked"] == 2
    [signature] = result["signatures"]
    assert signature["annotations"] == {"sig": "cosign", "run": "42"}
    assert signature["payloadDigest"] == good[0]

    # The same signatures placed next to the other artifact: the good one binds `digest`, not `other`.
    http_put_manifest(
        registry,
        repo_path,
        sig_tag(other),
        cosign_signature_manifest((config_digest, len(config)), [good]),
        OCI_MANIFEST,
    )
    moved = mloci("verify", f"{repo}:2.0.0", "--key", public_pem)
    assert moved.exit_code == 6
    assert one_line_error(moved.stderr).endswith(f"signs {digest}, not this artifact")


# -- the local store ------------------------------------------------------------------------------------


def test_sign_and_verify_in_the_local_store(
    mloci: Runner, monkeypatch: pytest.MonkeyPatch, bundle: Path, tmp_path: Path
) -> None:
    digest = push(mloci, bundle)
    key = keygen(mloci, monkeypatch, tmp_path / "mloci")
    stranger = keygen(mloci, monkeypatch, tmp_path / "stranger")
    unsigned = mloci("verify", "churn-model:1.0.0", "--key", pub(key))
    assert unsigned.exit_code == 6
    assert "is not signed" in one_line_error(unsigned.stderr)
    signed = mloci(
        "sign", "churn-model:1.0.0", "--key", key, "--format", "legacy", "-a", "stage=dev", "--json"
    )
    assert signed.exit_code == 0, signed.stderr
    assert json.loads(signed.stdout)["signatureReference"].startswith(f"churn-model:{sig_tag(digest)}@")
    verified = mloci("verify", f"churn-model@{digest}", "--key", pub(key), "-a", "stage=dev")
    assert verified.exit_code == 0, verified.stderr
    assert mloci("verify", "churn-model:1.0.0", "--key", pub(stranger)).exit_code == 6
