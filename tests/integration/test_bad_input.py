"""Bad input through the real CLI and a real registry (issue 10): push refuses links out of the bundle
and stale checksum files, pull refuses control characters, and nothing remote reaches the terminal raw."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from helpers import Registry, Runner, random_bundle

from mloci.ops import referrers
from mloci.ops.push import EagerUploader
from mloci.store import RegistryStore, open_store
from mloci.types import Descriptor, Manifest, Reference, mediatype
from mloci.types.blob import Blob


@pytest.fixture(params=["registry", "local"])
def target(request: pytest.FixtureRequest) -> str:
    """Where to push: a real registry, or the local store."""
    if request.param == "local":
        return "churn-model"
    registry: Registry = request.getfixturevalue("registry")
    return f"{registry.host}/ml/churn-model"


def tags_of(mloci: Runner, target: str) -> list[str]:
    result = mloci("ls", target, "--json")
    if result.exit_code != 0:
        return []
    return [tag for version in json.loads(result.stdout)["versions"] for tag in version["tags"]]


def test_push_refuses_a_symlinked_file_outside_the_bundle(
    mloci: Runner, bundle: Path, tmp_path: Path, target: str
) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    (bundle / "weights.bin").symlink_to(secret)
    result = mloci("push", bundle, target)
    assert result.exit_code == 3, result.stderr
    assert "weights.bin: symlink pointing outside the bundle" in result.stderr
    assert tags_of(mloci, target) == []


def test_push_refuses_a_stale_sha256_txt(mloci: Runner, bundle: Path, target: str) -> None:
    model = bundle / "model.onnx"
    (bundle / "sha256.txt").write_text(f"{hashlib.sha256(model.read_bytes()).hexdigest()}  model.onnx\n")
    assert mloci("push", bundle, target).exit_code == 0
    with model.open("ab") as handle:
        handle.write(b"retrained, checksum not updated")
    data = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**data, "version": "1.0.1"}))
    result = mloci("push", bundle, target)
    assert result.exit_code == 3, result.stderr
    assert "sha256.txt:1: 'model.onnx' does not match its checksum" in result.stderr
    assert "1.0.1" not in tags_of(mloci, target)


def test_push_of_a_large_file_checks_sha256sums_against_the_digest_it_computed(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    """The eager upload path hashes while it sends: the checksum file is compared with that digest."""
    bundle = random_bundle(tmp_path, "big", "weights.bin", EagerUploader.MIN_SIZE + 1)
    (bundle / "SHA256SUMS").write_text(f"{'ab' * 32} *weights.bin\n")
    repo = f"{registry.host}/ml/big"
    result = mloci("push", bundle, repo)
    assert result.exit_code == 3 and "SHA256SUMS:1: 'weights.bin' does not match" in result.stderr
    assert tags_of(mloci, repo) == []
    digest = hashlib.sha256((bundle / "weights.bin").read_bytes()).hexdigest()
    (bundle / "SHA256SUMS").write_text(f"{digest} *./weights.bin\n")
    assert mloci("push", bundle, repo).exit_code == 0


def push_crafted(registry: Registry, paths: list[str], annotations: dict[str, str]) -> str:
    """An artifact whose layers carry ``paths`` and whose manifest carries ``annotations``."""
    store = RegistryStore(registry.host)
    repo = Reference(registry.host, "crafted/model")
    config = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    store.push_blob(repo.repository, config)
    layers = []
    for index, path in enumerate(paths):
        blob = Blob.of_bytes(mediatype.model_layer("weight"), f"data {index}".encode())
        store.push_blob(repo.repository, blob)
        layers.append(blob.descriptor.model_copy(update={"annotations": {"org.cncf.model.filepath": path}}))
    manifest = Manifest(
        artifact_type=mediatype.MODEL_ARTIFACT,
        config=config.descriptor,
        layers=layers,
        annotations=annotations,
    )
    pushed = store.push_manifest(repo.with_tag("1.0.0"), manifest.to_json(), mediatype.OCI_MANIFEST)
    store.close()
    return f"{repo.name}@{pushed.digest}"


@pytest.mark.parametrize("path", ["evil\nname.bin", "esc\x1b]0;owned\x07.bin", "dir/\x9b2J.bin"])
def test_pull_refuses_control_characters_in_remote_file_paths(
    mloci: Runner, registry: Registry, tmp_path: Path, path: str
) -> None:
    ref = push_crafted(registry, [path], {})
    out = tmp_path / "out"
    result = mloci("pull", ref, "-o", out)
    assert result.exit_code == 6, result.stderr
    assert "unsafe file path" in result.stderr
    assert not out.exists()


def test_pull_refuses_paths_that_differ_only_in_unicode_normalization(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    ref = push_crafted(registry, ["mod\u00e8le.bin", "mode\u0300le.bin"], {})
    result = mloci("pull", ref, "-o", tmp_path / "out")
    assert result.exit_code == 6 and "Unicode normalization" in result.stderr


def test_file_names_with_control_characters_never_reach_the_registry(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    (bundle / "a\x1b[2Jb.bin").write_bytes(b"x")
    result = mloci("push", bundle, f"{registry.host}/ml/churn-model")
    assert result.exit_code == 3 and "a\\x1b[2Jb.bin: file name holds a control character" in result.stderr
    assert "\x1b" not in result.stderr
    assert not (registry.storage / "docker" / "registry" / "v2" / "repositories" / "ml").exists()


ESC = "\x1b]0;owned\x07\x1b[2J"  # set the window title, clear the screen
UNSAFE = ("\x1b", "\x07", "\x9b", "\u202e")


def assert_escaped(text: str) -> None:
    assert not any(c in text for c in UNSAFE), repr(text)


def crafted_manifest(
    registry: Registry, *, subject: Descriptor | None = None, artifact_type: str = ""
) -> Descriptor:
    """Push a manifest whose annotations and file paths hold terminal escapes, newlines and a bidi override."""
    store = RegistryStore(registry.host)
    repo = Reference(registry.host, "crafted/model")
    config = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    store.push_blob(repo.repository, config)
    blob = Blob.of_bytes(mediatype.model_layer("weight"), b"weights")
    store.push_blob(repo.repository, blob)
    layer = blob.descriptor.model_copy(
        update={"annotations": {"org.cncf.model.filepath": f"model{ESC}\n\u202efdp.exe"}}
    )
    annotations = {
        "org.opencontainers.image.version": f"1.0.0{ESC}",
        "org.opencontainers.image.description": f"line one\nline two{ESC}\x9b31m",
        "dev.mloci.metrics": json.dumps({f"acc{ESC}": 0.9}),
        f"evil{ESC}.key": "value",
    }
    manifest = Manifest(
        artifact_type=artifact_type or mediatype.MODEL_ARTIFACT,
        config=config.descriptor,
        layers=[layer],
        annotations=annotations,
        subject=subject,
    )
    try:
        if subject is not None:
            return referrers.attach(store, repo, manifest)
        return store.push_manifest(repo.with_tag("1.0.0"), manifest.to_json(), mediatype.OCI_MANIFEST)
    finally:
        store.close()


def test_nothing_from_a_registry_reaches_the_terminal_unescaped(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    subject = crafted_manifest(registry)
    crafted_manifest(registry, subject=subject, artifact_type=f"application/x-evil{ESC}")
    ref = f"{registry.host}/crafted/model@{subject.digest}"
    clean = f"{registry.host}/ml/churn-model"
    assert mloci("push", bundle, clean).exit_code == 0

    inspected = mloci("inspect", ref)
    assert inspected.exit_code == 0, inspected.stderr
    assert_escaped(inspected.stdout)
    assert "model\\x1b]0;owned\\x07\\x1b[2J\\x0a\\u202efdp.exe" in inspected.stdout
    assert "line one\\x0aline two" in inspected.stdout
    # One line per annotation: no remote newline breaks the table.
    assert len([line for line in inspected.stdout.splitlines() if "line two" in line]) == 1

    for args in (
        ("ls", f"{registry.host}/crafted/model"),
        ("diff", f"{clean}:1.0.0", ref),
        ("discover", ref),
        ("inspect", ref, "--json"),
        ("pull", ref, "-o", str(bundle.parent / "out")),  # refused: the error quotes the remote path
    ):
        result = mloci(*args)
        assert_escaped(result.stdout + result.stderr)
    assert "x-evil\\x1b]0;owned" in mloci("discover", ref).stdout
    assert json.loads(mloci("inspect", ref, "--json").stdout)["annotations"][f"evil{ESC}.key"] == "value"


def test_history_escapes_what_promotion_records_hold(
    mloci: Runner, registry: Registry, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    assert mloci("push", bundle, repo).exit_code == 0
    monkeypatch.setenv("MLOCI_ACTOR", f"mallory{ESC}")
    assert mloci("promote", f"{repo}:1.0.0", "--to", "prod", "--reason", f"why\n{ESC}").exit_code == 0
    history = mloci("history", repo, "--env", "prod")
    assert history.exit_code == 0, history.stderr
    assert_escaped(history.stdout)
    assert "mallory\\x1b]0;owned" in history.stdout and "why\\x0a" in history.stdout


def tar_holding(*names: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(b"from the tar")
            tar.addfile(info, io.BytesIO(b"from the tar"))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "layers",
    [
        [("raw", "model.onnx"), ("tar", "model.onnx")],  # a tar entry over a raw layer's file
        [("tar", "model.onnx"), ("tar", "model.onnx")],  # two tar layers writing one file
        [("tar", "mod\u00e8le.bin"), ("raw", "mode\u0300le.bin")],  # equal after NFC
    ],
)
def test_pull_refuses_two_layers_writing_one_file(
    mloci: Runner, registry: Registry, tmp_path: Path, layers: list[tuple[str, str]]
) -> None:
    store = RegistryStore(registry.host)
    repo = Reference(registry.host, "crafted/clash")
    config = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    store.push_blob(repo.repository, config)
    descriptors = []
    for index, (packing, path) in enumerate(layers):
        if packing == "raw":
            blob = Blob.of_bytes(mediatype.model_layer("weight"), b"verified raw layer")
            annotation = path
        else:
            blob = Blob.of_bytes(mediatype.model_layer("weight", "tar"), tar_holding(path))
            annotation = f"dir{index}"
        store.push_blob(repo.repository, blob)
        descriptors.append(
            blob.descriptor.model_copy(update={"annotations": {"org.cncf.model.filepath": annotation}})
        )
    manifest = Manifest(artifact_type=mediatype.MODEL_ARTIFACT, config=config.descriptor, layers=descriptors)
    pushed = store.push_manifest(repo.with_tag("t"), manifest.to_json(), mediatype.OCI_MANIFEST)
    store.close()
    out = tmp_path / "out"
    result = mloci("pull", f"{repo.name}@{pushed.digest}", "-o", out, "--concurrency", "1")
    assert result.exit_code == 6, result.stderr
    # Found when the second file would be created (O_EXCL), or when the layers' files are compared.
    assert "twice" in result.stderr or "clashes with another file of the artifact" in result.stderr
    assert not out.exists()


def test_history_skips_a_malformed_record_instead_of_failing(mloci: Runner, bundle: Path) -> None:
    assert mloci("push", bundle).exit_code == 0
    assert mloci("promote", "churn-model:1.0.0", "--to", "prod").exit_code == 0
    ref = Reference(None, "churn-model", tag="mloci-promotion-prod-20990101T000000000000Z-deadbeef")
    open_store(ref).push_manifest(ref, b'{"schemaVersion": 2, "layers": 7}', mediatype.OCI_MANIFEST)
    result = mloci("history", "churn-model", "--env", "prod", "--json")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["promotions"]) == 1
