"""The Python API against the real registry and the local store: the documented examples run as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import REPO_ROOT, Registry

import mloci
from mloci.ops.sign import generate_keypair

DOC = REPO_ROOT / "docs" / "python-api.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def self_signed_ca() -> bytes:
    """A CA certificate in PEM (the test registry speaks plain HTTP, so it is only loaded)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corp CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def workspace(tmp_path: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with the example bundle as model_bundle/, a key and a CA file."""
    work = tmp_path / "work"
    work.mkdir()
    bundle.rename(work / "model_bundle")
    generate_keypair(work / "cosign", b"", allow_unencrypted=True)
    (work / "corp-ca.pem").write_bytes(self_signed_ca())
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("where", ["registry", "local store"])
def test_the_documented_examples_run(
    where: str, workspace: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "churn-model"
    if where == "registry":
        registry: Registry = request.getfixturevalue("registry")
        repo = f"{registry.host}/ml/churn-model"
    models = workspace / "models"
    for block in python_blocks():
        code = block.replace("registry.example.com/ml/churn-model", repo).replace(
            "/models/churn", str(models / "churn")
        )
        if "9.9.9" in block:
            exec(compile(code, str(DOC), "exec"), {})  # noqa: S102  (the documented error example)
            continue
        exec(compile(code, str(DOC), "exec"), {})  # noqa: S102  (the documentation is the test)
    out = capsys.readouterr().out
    assert "0.8683" in out  # the auc printed by the example
    assert "no such version" in out
    assert (models / "churn" / "model.onnx").read_bytes() == (
        workspace / "model_bundle" / "model.onnx"
    ).read_bytes()
    prod = mloci.inspect(f"{repo}:prod")
    assert prod.bundle is not None and prod.bundle.name == "churn-model"
    assert mloci.verify(f"{repo}:1.0.0", key=workspace / "cosign.pub").digest == prod.digest
    assert [e.record.environment for e in mloci.history(repo, env="prod")] == ["prod"]


def test_results_are_typed_values(registry: Registry, bundle: Path, tmp_path: Path) -> None:
    repo = f"{registry.host}/ml/churn-model"
    with mloci.Client(concurrency=2) as client:
        pushed = client.push(bundle, repo, tags=["candidate"])
        assert isinstance(pushed.reference, mloci.Reference) and isinstance(pushed.digest, mloci.Digest)
        assert set(pushed.tags) == {"1.0.0", "candidate"} and not pushed.unchanged
        assert client.push(bundle, repo).unchanged
        artifact = client.inspect(pushed.reference)
        assert isinstance(artifact.manifest, mloci.Manifest)
        assert isinstance(artifact.bundle, mloci.BundleManifest)
        assert artifact.metrics["auc"] == pytest.approx(0.8683)
        assert {f.path for f in artifact.files} >= {"model.onnx", "metrics.json", "manifest.json"}
        versions = client.versions(repo)
        assert [v.version for v in versions] == ["1.0.0"] and versions[0].aliases == ["candidate"]
        pulled = client.pull(pushed.reference, tmp_path / "m", digest_file=tmp_path / "DIGEST")
        assert pulled.digest == pushed.digest
        assert (tmp_path / "DIGEST").read_text().strip() == str(pushed.digest)
        copied = client.copy(pushed.reference, f"{registry.host}/other/churn:1.0.0")
        assert copied.digest == pushed.digest
        assert client.diff(pushed.reference, copied.destination).identical
        # One store per registry for every call of the client: one pool, one token cache.
        assert client.session.store(pushed.reference) is client.session.store(copied.destination)


def test_public_functions_raise_only_mloci_errors(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(mloci.UsageError) as bad:
        mloci.inspect("Not A Reference")
    assert bad.value.exit_code == 2
    with pytest.raises(mloci.NotFoundError):
        mloci.inspect(f"{registry.host}/ml/none:1.0.0")
    with pytest.raises(mloci.BundleInvalidError) as invalid:
        mloci.push(tmp_path / "missing")
    assert invalid.value.exit_code == 3
    with pytest.raises(mloci.MlociError):
        mloci.pull(f"{registry.host}/ml/none:1.0.0", tmp_path / "out")
    assert mloci.validate(tmp_path / "missing").valid is False


def test_the_pipeline_example_runs(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(REPO_ROOT / "examples"))
    try:
        import pipeline  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    private, public = generate_keypair(tmp_path / "ci", b"", allow_unencrypted=True)
    repo = f"{registry.host}/ml/churn-model"
    code = pipeline.main(
        ["--repository", repo, "--key", str(private), "--to", "staging", "--workdir", str(tmp_path / "build")]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    staging = mloci.inspect(f"{repo}:staging")
    assert str(staging.digest) == summary["digest"]
    assert mloci.verify(f"{repo}:staging", key=public).digest == staging.digest
    tree = mloci.discover(f"{repo}:staging").to_json()
    assert "application/vnd.cyclonedx+json" in json.dumps(tree)


def test_import_mloci_is_cheap() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        start = time.perf_counter()
        import mloci
        took = time.perf_counter() - start
        heavy = [m for m in ("pydantic", "urllib3", "cryptography", "mloci.ops") if m in sys.modules]
        print(took, heavy)
        """
    )
    best = min(
        float(
            subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        for _ in range(3)
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert done.split(" ", 1)[1].strip() == "[]", done
    assert best <= 0.150, f"import mloci took {best * 1000:.0f} ms"
