"""Inference images: built without a daemon on a base image we make ourselves, run for real with runc."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Registry, Runner

from mloci.store import RegistryStore
from mloci.types import Descriptor, Index, Manifest, Reference, mediatype
from mloci.types.blob import Blob
from mloci.types.manifest import Platform, canonical_json

BUSYBOX = Path("/bin/busybox")
TOOLS = ("sh", "sha256sum", "cat", "ls", "echo", "env")


def busybox_layer() -> tuple[bytes, str]:
    """A rootfs layer with a static busybox: (gzipped tar, diff id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in (("bin", tarfile.DIRTYPE), ("tmp", tarfile.DIRTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755
            tar.addfile(info)
        data = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for tool in TOOLS:
            link = tarfile.TarInfo(f"bin/{tool}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), "sha256:" + hashlib.sha256(plain).hexdigest()


def push_base(registry: Registry, *, multi_platform: bool = False) -> str:
    store = RegistryStore(registry.host)
    repo = Reference(registry.host, "base/busybox")
    layer_bytes, diff_id = busybox_layer()
    layer = Blob.of_bytes(mediatype.OCI_LAYER_TAR_GZIP, layer_bytes)
    store.push_blob(repo.repository, layer)
    manifests = []
    for arch in ("amd64", "arm64") if multi_platform else ("amd64",):
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        config_blob = Blob.of_bytes(mediatype.OCI_CONFIG, canonical_json(config))
        store.push_blob(repo.repository, config_blob)
        data = Manifest(config=config_blob.descriptor, layers=[layer.descriptor]).to_json()
        pushed = store.push_manifest(repo.with_tag(f"1-{arch}"), data, mediatype.OCI_MANIFEST)
        manifests.append(pushed.model_copy(update={"platform": Platform(architecture=arch, os="linux")}))
    if multi_platform:
        index = Index(manifests=manifests).to_json()
        pushed = store.push_manifest(repo.with_tag("1"), index, mediatype.OCI_INDEX)
    else:
        pushed = store.push_manifest(repo.with_tag("1"), data, mediatype.OCI_MANIFEST)
    store.close()
    return f"{registry.host}/base/busybox@{pushed.digest}"


def build(mloci: Runner, *args: object) -> dict[str, object]:
    result = mloci("image", "build", *args, "--json")
    assert result.exit_code == 0, result.stderr
    value: dict[str, object] = json.loads(result.stdout)
    return value


def test_image_carries_the_model_and_labels_and_is_reproducible(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    base = push_base(registry)
    repo = f"{registry.host}/ml/churn-infer"
    first = build(mloci, bundle, "--base", base, "--repo", repo, "--cmd", "python serve.py", "--port", "8080")
    assert str(first["reference"]).startswith(f"{repo}:1.0.0@sha256:")
    model = json.loads(mloci("push", bundle, "--json").stdout)["digest"]
    assert first["model"] == model
    again = build(
        mloci,
        bundle,
        "--base",
        base,
        "--repo",
        f"{registry.host}/ml/other",
        "--cmd",
        "python serve.py",
        "--port",
        "8080",
    )
    assert again["digest"] == first["digest"]  # same inputs, same image, wherever it is pushed

    info = json.loads(mloci("inspect", str(first["reference"]), "--json").stdout)
    annotations = info["annotations"]
    assert annotations["dev.mloci.model.digest"] == model
    assert annotations["org.opencontainers.image.base.digest"] == base.split("@")[1]
    assert annotations["org.opencontainers.image.version"] == "1.0.0"
    config = info["config"]
    assert "MODEL_PATH=/models/churn-model" in config["config"]["Env"]
    assert config["config"]["Cmd"] == ["python", "serve.py"]
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert config["config"]["Labels"]["dev.mloci.model.digest"] == model
    assert len(config["rootfs"]["diff_ids"]) == 2


def test_multi_platform_base_gets_the_layer_on_every_platform(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    base = push_base(registry, multi_platform=True)
    result = build(mloci, bundle, "--base", base, "--repo", f"{registry.host}/ml/churn-infer")
    assert result["platforms"] == ["linux/amd64", "linux/arm64"]
    raw = json.loads(mloci("inspect", str(result["reference"]), "--json").stdout)["manifest"]
    assert raw["mediaType"] == mediatype.OCI_INDEX and len(raw["manifests"]) == 2


def test_image_from_a_model_reference_and_an_app_layer(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    base = push_base(registry)
    pushed = json.loads(mloci("push", bundle, f"{registry.host}/ml/churn", "--json").stdout)
    app = tmp_path / "app"
    app.mkdir()
    (app / "serve.py").write_text("print('serving')\n")
    result = build(
        mloci,
        f"{registry.host}/ml/churn@{pushed['digest']}",
        "--base",
        base,
        "--repo",
        f"{registry.host}/ml/churn-infer",
        "--app",
        app,
        "--no-push",
    )
    assert result["model"] == pushed["digest"]
    assert str(result["reference"]).startswith("ml/churn-infer:1.0.0@")  # kept in the local store
    config = json.loads(mloci("inspect", str(result["reference"]), "--json").stdout)["config"]
    assert len(config["rootfs"]["diff_ids"]) == 3 and config["config"]["WorkingDir"] == "/app"


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{argv[0]} failed: {done.stderr}"


def can_run_containers() -> str | None:
    for tool in ("skopeo", "umoci", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {tool})"
    if os.geteuid() != 0:
        return "runc needs root here"
    return None


@pytest.mark.skipif(can_run_containers() is not None, reason=str(can_run_containers()))
def test_the_built_image_runs_and_serves_exactly_the_model(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    base = push_base(registry)
    result = build(
        mloci,
        bundle,
        "--base",
        base,
        "--repo",
        f"{registry.host}/ml/churn-infer",
        "--cmd",
        "sh -c 'sha256sum $MODEL_PATH/model.onnx; echo $MODEL_DIGEST'",
    )
    layout = tmp_path / "layout"
    pinned = f"{registry.host}/ml/churn-infer@{result['digest']}"
    run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{pinned}", f"oci:{layout}:img"])
    unpacked = tmp_path / "bundle"
    run(["umoci", "unpack", "--image", f"{layout}:img", str(unpacked)])
    spec = json.loads((unpacked / "config.json").read_text())
    spec["process"]["terminal"] = False
    (unpacked / "config.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [
            "runc",
            "--root",
            str(tmp_path / "runc-state"),
            "run",
            "-b",
            str(unpacked),
            f"mloci-test-{os.getpid()}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 and ("cgroup" in done.stderr or "namespace" in done.stderr):
        pytest.skip(f"this machine cannot run containers: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    expected = hashlib.sha256((bundle / "model.onnx").read_bytes()).hexdigest()
    assert done.stdout.split()[0] == expected
    assert done.stdout.split()[-1] == result["model"]


def test_docker_engine_path_without_a_daemon_is_a_clear_error(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\nCOPY model/ /models/\n")
    result = mloci(
        "image",
        "build",
        bundle,
        "--base",
        "unused",
        "--repo",
        f"{registry.host}/ml/x",
        "--engine",
        "docker",
        "--dockerfile",
        dockerfile,
    )
    assert result.exit_code == 8 and "no Docker daemon" in result.stderr


def test_descriptor_types_are_exported() -> None:
    assert Descriptor.of_bytes("x", b"").size == 0


def test_image_volume_format_is_a_mountable_reproducible_image(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-volume"
    first = json.loads(mloci("push", bundle, repo, "--format", "image-volume", "--json").stdout)
    assert first["tags"] == ["1.0.0-image"]
    again = json.loads(mloci("push", bundle, repo, "--format", "image-volume", "--json").stdout)
    assert again["digest"] == first["digest"] and again["unchanged"] is True
    index = json.loads(mloci("inspect", f"{repo}:1.0.0-image", "--json").stdout)["manifest"]
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    if shutil.which("umoci") is None or shutil.which("skopeo") is None:
        pytest.skip("umoci/skopeo not installed")
    layout = tmp_path / "layout"
    run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            "amd64",
            f"docker://{repo}@{first['digest']}",
            f"oci:{layout}:img",
        ]
    )
    unpacked = tmp_path / "unpacked"
    run(["umoci", "raw", "unpack", "--image", f"{layout}:img", str(unpacked)])
    served = unpacked / "models" / "churn-model" / "model.onnx"
    assert served.read_bytes() == (bundle / "model.onnx").read_bytes()


def test_pull_writes_the_resolved_digest_for_the_serving_container(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    digest = json.loads(mloci("push", bundle, repo, "--json").stdout)["digest"]
    digest_file = tmp_path / "digest"
    result = mloci("pull", f"{repo}:1.0.0", "-o", tmp_path / "models", "--digest-file", digest_file)
    assert result.exit_code == 0, result.stderr
    assert digest_file.read_text() == f"{digest}\n"


@pytest.fixture
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """dockerd as a plain process (vfs, no bridge, no iptables), or a skip saying why not."""
    binary = shutil.which("dockerd")
    if binary is None:
        pytest.skip("dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root here")
    # A short path: unix sockets are limited to ~100 bytes.
    root = Path(tempfile.mkdtemp(prefix="mlocid-", dir="/tmp"))
    socket = root / "docker.sock"
    config = root / "daemon.json"
    config.write_text(
        json.dumps(
            {
                "default-ulimits": {
                    "nofile": {"Name": "nofile", "Hard": 20000, "Soft": 20000},
                    "nproc": {"Name": "nproc", "Hard": 4000, "Soft": 4000},
                }
            }
        )
    )
    log = (root / "dockerd.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "--config-file",
            str(config),
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "-H",
            f"unix://{socket}",
            "--pidfile",
            str(root / "docker.pid"),
            "--storage-driver",
            "vfs",
            "--bridge",
            "none",
            "--iptables=false",
            "--ip6tables=false",
            "--containerd-namespace",
            "mloci-test",
            "--insecure-registry",
            "127.0.0.0/8",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while not socket.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not socket.exists():
            pytest.skip(f"dockerd did not start: {(root / 'dockerd.log').read_text(errors='replace')[-300:]}")
        yield f"unix://{socket}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def test_docker_engine_path_builds_tags_and_pushes(
    mloci: Runner,
    registry: Registry,
    bundle: Path,
    tmp_path: Path,
    dockerd: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", dockerd)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\nARG MODEL_NAME\nCOPY model/ /models/churn-model/\n")
    result = build(
        mloci,
        bundle,
        "--repo",
        f"{registry.host}/ml/churn-docker",
        "--engine",
        "docker",
        "--dockerfile",
        dockerfile,
    )
    assert str(result["reference"]).startswith(f"{registry.host}/ml/churn-docker:1.0.0@sha256:")
    model = json.loads(mloci("push", bundle, "--json").stdout)["digest"]
    assert result["model"] == model
    pushed = f"{registry.host}/ml/churn-docker@{result['digest']}"
    config = json.loads(mloci("inspect", pushed, "--json").stdout)["config"]
    assert config["config"]["Labels"]["dev.mloci.model.digest"] == model


def test_images_promote_like_models(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = push_base(registry, multi_platform=True)
    repo = f"{registry.host}/ml/churn-infer"
    built = build(mloci, bundle, "--base", base, "--repo", repo)
    promoted = json.loads(mloci("promote", f"{repo}@{built['digest']}", "--to", "prod", "--json").stdout)
    assert promoted["digest"] == built["digest"]
    assert json.loads(mloci("inspect", f"{repo}:prod", "--json").stdout)["digest"] == built["digest"]
    copied = json.loads(mloci("copy", f"{repo}:prod", f"{registry.host}/prod/churn-infer", "--json").stdout)
    assert copied["digest"] == built["digest"] and copied["manifests"] == 3  # the index and both platforms
