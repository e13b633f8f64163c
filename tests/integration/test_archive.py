"""export / import / oci-archive: references, against real registries and real skopeo."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers import Registry, Runner, run_json

SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (apt-get install skopeo)")
PASSWORD = "archive-test-password"


def skopeo(*args: str) -> bytes:
    assert SKOPEO is not None
    done = subprocess.run([SKOPEO, *args], capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@pytest.fixture
def key(mloci: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", PASSWORD)
    result = mloci("keygen", "--output-key-prefix", tmp_path / "team")
    assert result.exit_code == 0, result.stderr
    return tmp_path / "team.key"


@needs_skopeo
def test_export_is_deterministic_readable_in_place_and_imports_with_digests_unchanged(
    mloci: Runner, registry: Registry, bundle: Path, key: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn-model"
    digest = str(run_json(mloci, "push", bundle, repo)["digest"])
    assert mloci("sign", f"{repo}@{digest}", "--key", key).exit_code == 0
    assert mloci("sbom", f"{repo}:1.0.0", "--attach").exit_code == 0

    first, second = tmp_path / "a" / "churn-model-1.0.0.tar", tmp_path / "b" / "churn-model-1.0.0.tar"
    exported = run_json(mloci, "export", f"{repo}:1.0.0", "--with-referrers", "-o", first)
    assert len(exported["referrers"]) == 2  # type: ignore[arg-type]
    run_json(mloci, "export", f"{repo}:1.0.0", "--with-referrers", "-o", second)
    assert first.read_bytes() == second.read_bytes()
    assert exported["digest"] == "sha256:" + hashlib.sha256(first.read_bytes()).hexdigest()
    with tarfile.open(first) as tar:
        names = tar.getnames()
        assert names[:2] == ["blobs", "blobs/sha256"] and names[-2:] == ["index.json", "oci-layout"]
        assert {(m.uid, m.gid, m.mtime) for m in tar.getmembers()} == {(0, 0, 0)}
    assert not list(first.parent.glob(".*partial"))

    # skopeo (containers/image) reads it: exactly our manifest bytes.
    raw = skopeo("inspect", "--raw", f"oci-archive:{first}:ml/churn-model:1.0.0")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest

    # inspect, verify and pull read the archive in place.
    archive_ref = f"oci-archive:{first}:1.0.0"
    assert run_json(mloci, "inspect", archive_ref)["digest"] == digest
    verified = mloci("verify", archive_ref, "--key", key.with_suffix(".pub"))
    assert verified.exit_code == 0, verified.stderr
    out = tmp_path / "pulled"
    assert mloci("pull", f"oci-archive:{first}@{digest}", "-o", out).exit_code == 0
    assert (out / "model.onnx").read_bytes() == (bundle / "model.onnx").read_bytes()

    # import into another registry namespace: same digest, signature still verifies there.
    (tmp_path / "other-registry").mkdir()
    other = Registry(tmp_path / "other-registry")
    other.start()
    try:
        imported = run_json(mloci, "import", first, f"{other.host}/mirror")
        assert imported["artifacts"] == [
            {"reference": f"{other.host}/mirror/ml/churn-model:1.0.0@{digest}", "digest": digest}
        ]
        target = f"{other.host}/mirror/ml/churn-model:1.0.0"
        assert mloci("verify", target, "--key", key.with_suffix(".pub")).exit_code == 0
        found = run_json(mloci, "discover", target)
        assert len(json.dumps(found)) > 0 and "cyclonedx" in json.dumps(found)
    finally:
        other.stop()

    # and into the local store.
    local = run_json(mloci, "import", first)
    assert local["artifacts"] == [{"reference": f"ml/churn-model:1.0.0@{digest}", "digest": digest}]
    assert run_json(mloci, "inspect", "ml/churn-model:1.0.0")["digest"] == digest


@needs_skopeo
def test_compressed_export_is_deterministic_and_read_by_skopeo_and_mloci(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    digest = str(run_json(mloci, "push", bundle)["digest"])  # the local store
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    run_json(mloci, "export", "churn-model:1.0.0", "--compress", "-o", first)
    run_json(mloci, "export", "churn-model:1.0.0", "--compress", "-o", second)
    assert first.read_bytes() == second.read_bytes() and first.read_bytes()[:2] == b"\x1f\x8b"
    raw = skopeo("inspect", "--raw", f"oci-archive:{first}:churn-model:1.0.0")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    assert run_json(mloci, "inspect", f"oci-archive:{first}")["digest"] == digest
    imported = run_json(mloci, "import", first, f"{registry.host}/air")
    assert imported["artifacts"] == [
        {"reference": f"{registry.host}/air/churn-model:1.0.0@{digest}", "digest": digest}
    ]


def test_archive_errors_are_one_clear_line(mloci: Runner, tmp_path: Path) -> None:
    missing = mloci("inspect", f"oci-archive:{tmp_path / 'nope.tar'}")
    assert missing.exit_code == 4 and "not found" in missing.stderr
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    bad = mloci("inspect", f"oci-archive:{junk}")
    assert bad.exit_code == 6 and "Traceback" not in bad.stderr
    with tarfile.open(tmp_path / "plain.tar", "w") as tar:
        tar.add(junk, arcname="something.txt")
    notlayout = mloci("import", tmp_path / "plain.tar")
    assert notlayout.exit_code == 6 and "not an OCI image-layout archive" in notlayout.stderr
    nothing = mloci("export", "-o", tmp_path / "x.tar")
    assert nothing.exit_code == 2


def test_export_streams_verified_blobs_and_leaves_nothing_on_corruption(
    mloci: Runner, bundle: Path, mloci_home: Path, tmp_path: Path
) -> None:
    digest = str(run_json(mloci, "push", bundle)["digest"])
    info = run_json(mloci, "inspect", f"churn-model@{digest}")
    weights = next(f for f in info["files"] if f["path"] == "model.onnx")  # type: ignore[attr-defined]
    blob = mloci_home / "oci" / "blobs" / "sha256" / weights["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    (tmp_path / "exports").mkdir()
    out = tmp_path / "exports" / "x.tar"
    result = mloci("export", "churn-model:1.0.0", "-o", out)
    assert result.exit_code == 6 and "does not match" in result.stderr
    assert list(out.parent.iterdir()) == []  # no archive, no .partial left behind


def test_python_api_export_and_import(registry: Registry, bundle: Path, tmp_path: Path) -> None:
    import mloci

    with mloci.Client() as client:
        pushed = client.push(bundle, pack={"data": "raw"})
        archive = tmp_path / "exports" / "churn.tar"
        exported = client.export([pushed.reference], archive)
        assert exported.artifacts[0].digest == pushed.digest and archive.is_file()
        imported = client.import_archive(archive, f"{registry.host}/air")
        assert [a.digest for a in imported.artifacts] == [pushed.digest]
        pulled = client.pull(f"oci-archive:{archive}@{pushed.digest}", tmp_path / "out", connections=2)
        assert pulled.digest == pushed.digest
