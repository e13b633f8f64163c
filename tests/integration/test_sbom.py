"""sbom / attach / discover: CycloneDX ML-BOMs, any report as a referrer, the tree of attachments.

Against a real distribution 2.8 registry, which has no referrers API: every attachment must be
findable through the ``sha256-<hex>`` fallback index, with artifactType and annotations kept.
The SBOM is validated against the CycloneDX 1.6 JSON schema shipped in cyclonedx-python-lib.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from helpers import Registry, Runner, run_json

from mloci.ops.attach import attach_file, discover
from mloci.types import Reference

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CYCLONEDX = "application/vnd.cyclonedx+json"

SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.fixture(autouse=True)
def isolated_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No ambient git work tree or CI variables leak into what is generated.
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in ("GITHUB_REPOSITORY", "GITHUB_ACTIONS", "GITLAB_CI", "CI_PROJECT_URL", "MLOCI_BUILDER_ID"):
        monkeypatch.delenv(name, raising=False)


def push(mloci: Runner, bundle: Path, repo: str | None = None, version: str | None = None) -> str:
    if version:
        path = bundle / "manifest.json"
        document = json.loads(path.read_text())
        document["version"] = version
        path.write_text(json.dumps(document, indent=2))
    return str(run_json(mloci, "push", bundle, *([repo] if repo else []))["digest"])


def validate_cyclonedx(document: bytes) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.decode())
    assert error is None, error


def fallback_index(registry: Registry, repo: str, digest: str) -> dict[str, Any]:
    tag = digest.replace(":", "-")
    response = urllib3.request(
        "GET", f"http://{registry.host}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_INDEX}
    )
    assert response.status == 200, response.data
    value: dict[str, Any] = json.loads(response.data)
    return value


def components_by_ref(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["bom-ref"]: c for c in document["components"]}


# -- sbom ----------------------------------------------------------------------------------------


def test_sbom_of_a_bundle_is_valid_cyclonedx_deterministic_and_names_the_pushed_digest(
    mloci: Runner, bundle: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "one.cdx.json", tmp_path / "two.cdx.json"
    assert mloci("sbom", bundle, "-o", first).exit_code == 0
    assert mloci("sbom", bundle, "-o", second).exit_code == 0
    assert first.read_bytes() == second.read_bytes()
    printed = mloci("sbom", bundle)
    assert printed.exit_code == 0 and printed.stdout.encode() == first.read_bytes()
    validate_cyclonedx(first.read_bytes())

    document = json.loads(first.read_bytes())
    digest = push(mloci, bundle)  # the local store: what the SBOM claims is what push publishes
    model = document["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    assert model["name"] == "churn-model" and model["version"] == "1.0.0"
    assert model["purl"] == f"pkg:oci/churn-model@{digest}"
    assert model["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert document["serialNumber"].startswith("urn:uuid:")
    assert document["metadata"]["timestamp"] == "2026-11-23T00:00:00Z"  # train_time, not the clock
    assert document["specVersion"] == "1.6"

    components = components_by_ref(document)
    onnx = components["file:model.onnx"]
    assert onnx["type"] == "machine-learning-model"
    assert onnx["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256((bundle / "model.onnx").read_bytes()).hexdigest()}
    ]
    assert components["file:train.py"]["type"] == "file"
    assert components["pkg:pypi/scikit-learn@1.9.1"]["type"] == "library"
    assert components["pkg:pypi/numpy@2.4.6"]["purl"] == "pkg:pypi/numpy@2.4.6"
    assert components["framework:onnx-1.23"] == {
        "bom-ref": "framework:onnx-1.23",
        "name": "onnx",
        "type": "framework",
        "version": "1.23",
    }
    assert components["dataset:synthetic://churn/seed-42/n-5000"]["type"] == "data"

    card = model["modelCard"]
    metrics = {m["type"]: m["value"] for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics["auc"] == "0.8683"
    assert card["modelParameters"]["inputs"] == [{"format": "features: float32[batch,7]"}]
    assert card["modelParameters"]["datasets"] == [{"ref": "dataset:synthetic://churn/seed-42/n-5000"}]
    assert card["considerations"]["useCases"][0].startswith("Rank active customers")
    depends = next(d for d in document["dependencies"] if d["ref"] == model["bom-ref"])
    assert "file:model.onnx" in depends["dependsOn"] and "pkg:pypi/onnx@1.23.2" in depends["dependsOn"]

    # A different file is a different SBOM (and a different serial number).
    (bundle / "train.py").write_text("# changed\n")
    changed = mloci("sbom", bundle)
    assert changed.exit_code == 0
    other = json.loads(changed.stdout)
    assert other["serialNumber"] != document["serialNumber"]


def test_sbom_of_a_reference_reads_no_weights_and_matches_the_directory(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    from_dir = mloci("sbom", bundle)
    assert from_dir.exit_code == 0
    local = push(mloci, bundle)
    from_local = mloci("sbom", f"churn-model@{local}")
    assert from_local.exit_code == 0, from_local.stderr
    assert from_local.stdout == from_dir.stdout  # same artifact, same bytes

    repo = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, repo)
    weights = "sha256:" + hashlib.sha256((bundle / "model.onnx").read_bytes()).hexdigest()
    result = run_json(mloci, "sbom", f"{repo}:1.0.0")
    assert result["digest"] == digest and result["reference"] == f"{repo}:1.0.0@{digest}"
    document = result["sbom"]
    validate_cyclonedx(json.dumps(document).encode())
    assert document["metadata"]["component"]["purl"] == (
        f"pkg:oci/churn@{digest}?repository_url={registry.host}/ml/churn"
    )
    assert components_by_ref(document)["file:model.onnx"]["hashes"][0]["content"] == weights.split(":")[1]
    assert registry.requests_matching(rf'"GET /v2/ml/churn/blobs/{weights}') == 0


def test_sbom_errors_are_one_line(mloci: Runner, bundle: Path, tmp_path: Path) -> None:
    attach_dir = mloci("sbom", bundle, "--attach")
    assert attach_dir.exit_code == 2 and "push it" in attach_dir.stderr
    a_file = mloci("sbom", bundle / "manifest.json")
    assert a_file.exit_code == 2
    missing = mloci("sbom", "churn-model:9.9.9")
    assert missing.exit_code == 4
    (bundle / "manifest.json").write_text("{}")
    invalid = mloci("sbom", bundle)
    assert invalid.exit_code == 3
    for result in (attach_dir, a_file, missing, invalid):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- attach + discover ---------------------------------------------------------------------------


def test_sbom_attach_then_discover_keeps_type_and_annotations_in_the_fallback_index(
    mloci: Runner, registry: Registry, bundle: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, repo)
    attached = run_json(mloci, "sbom", f"{repo}:1.0.0", "--attach")
    referrer = attached["attached"]
    assert referrer["artifactType"] == CYCLONEDX and referrer["subjectDigest"] == digest
    assert referrer["annotations"]["org.opencontainers.image.created"] == "2026-11-23T00:00:00Z"

    index = fallback_index(registry, "ml/churn", digest)
    [entry] = index["manifests"]
    assert entry["digest"] == referrer["digest"]
    assert entry["artifactType"] == CYCLONEDX
    assert entry["annotations"]["dev.mloci.sbom.spec"] == "CycloneDX 1.6"

    tree = run_json(mloci, "discover", f"{repo}:1.0.0")
    assert tree["digest"] == digest and tree["cosign"] == {}
    [node] = tree["referrers"]
    assert node["artifactType"] == CYCLONEDX and node["kind"] == "sbom: CycloneDX"
    assert node["annotations"]["dev.mloci.sbom.spec"] == "CycloneDX 1.6"
    assert node["referrers"] == []

    # The attached layer is exactly the SBOM, and attaching it again changes nothing.
    pulled = run_json(mloci, "pull", f"{repo}@{referrer['digest']}", "-o", bundle.parent / "sbom-out")
    sbom_file = bundle.parent / "sbom-out" / "sbom.cdx.json"
    assert pulled["files"][0]["path"] == "sbom.cdx.json"
    validate_cyclonedx(sbom_file.read_bytes())
    assert sbom_file.read_bytes() == mloci("sbom", f"{repo}:1.0.0").stdout.encode()
    again = run_json(mloci, "sbom", f"{repo}:1.0.0", "--attach")
    assert again["attached"]["digest"] == referrer["digest"]
    assert len(fallback_index(registry, "ml/churn", digest)["manifests"]) == 1

    text = mloci("discover", f"{repo}:1.0.0")
    assert text.exit_code == 0
    assert CYCLONEDX in text.stdout and "sbom: CycloneDX" in text.stdout


def test_discover_shows_referrers_of_referrers_cosign_tags_and_filters_by_type(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, repo)
    sbom = run_json(mloci, "sbom", f"{repo}:1.0.0", "--attach")["attached"]
    review = tmp_path / "review.json"
    review.write_text(json.dumps({"approved": True}))
    nested = run_json(
        mloci,
        "attach",
        f"{repo}@{sbom['digest']}",
        review,
        "--artifact-type",
        "application/vnd.example.review+json",
        "-a",
        "reviewer=alice",
    )
    junit = tmp_path / "junit.xml"
    junit.write_text('<testsuite tests="1" failures="0"/>')
    tests = run_json(mloci, "attach", f"{repo}:1.0.0", junit, "--artifact-type", "application/junit+xml")
    assert tests["layer"]["annotations"] == {"org.opencontainers.image.title": "junit.xml"}
    assert tests["layer"]["mediaType"] == "application/junit+xml"

    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "")
    assert mloci("keygen", "--output-key-prefix", tmp_path / "k", "--allow-unencrypted").exit_code == 0
    assert mloci("sign", f"{repo}:1.0.0", "--key", tmp_path / "k.key", "--format", "both").exit_code == 0
    signed_sbom = mloci("sign", f"{repo}@{sbom['digest']}", "--key", tmp_path / "k.key", "--format", "both")
    assert signed_sbom.exit_code == 0

    tree = run_json(mloci, "discover", f"{repo}:1.0.0")
    assert tree["cosign"]["signatures"]["tag"] == digest.replace(":", "-") + ".sig"
    assert tree["cosign"]["signatures"]["layers"] == 1
    by_type = {n["artifactType"]: n for n in tree["referrers"]}
    assert set(by_type) == {CYCLONEDX, "application/junit+xml", SIGSTORE_BUNDLE}
    assert by_type["application/junit+xml"]["kind"] == "test results: JUnit"
    assert by_type[SIGSTORE_BUNDLE]["kind"] == "signature: sigstore bundle"
    sbom_node = by_type[CYCLONEDX]
    assert sbom_node["cosign"]["signatures"]["layers"] == 1  # the SBOM itself is signed
    [child] = [n for n in sbom_node["referrers"] if n["artifactType"] != SIGSTORE_BUNDLE]
    assert child["digest"] == nested["digest"]
    assert child["artifactType"] == "application/vnd.example.review+json"
    assert child["annotations"]["reviewer"] == "alice"

    only = run_json(mloci, "discover", f"{repo}:1.0.0", "--artifact-type", CYCLONEDX)
    assert [n["artifactType"] for n in only["referrers"]] == [CYCLONEDX]
    assert len(only["referrers"][0]["referrers"]) == 2  # what hangs below a match is shown

    text = mloci("discover", f"{repo}:1.0.0").stdout
    assert "cosign signatures" in text and "application/vnd.example.review+json" in text
    assert "└──" in text


def test_spdx_documents_are_recognised_whichever_media_type_names_them(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    push(mloci, bundle, repo)
    spdx = tmp_path / "model.spdx.json"
    spdx.write_text(
        json.dumps(
            {
                "spdxVersion": "SPDX-2.3",
                "dataLicense": "CC0-1.0",
                "SPDXID": "SPDXRef-DOCUMENT",
                "name": "churn-model",
                "documentNamespace": "https://example.com/spdx/churn-model-1.0.0",
                "creationInfo": {"created": "2026-11-23T00:00:00Z", "creators": ["Tool: test"]},
                "packages": [],
            }
        )
    )
    for media_type in ("application/spdx+json", "text/spdx+json"):
        assert mloci("attach", f"{repo}:1.0.0", spdx, "--artifact-type", media_type).exit_code == 0
    tree = run_json(mloci, "discover", f"{repo}:1.0.0")
    kinds = {n["artifactType"]: n["kind"] for n in tree["referrers"]}
    assert kinds == {"application/spdx+json": "sbom: SPDX", "text/spdx+json": "sbom: SPDX"}
    assert all(n["annotations"]["org.opencontainers.image.created"] for n in tree["referrers"])


def test_attach_refuses_bad_input_in_one_line(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    push(mloci, bundle, repo)
    report = tmp_path / "report.json"
    report.write_text("{not json")
    not_json = mloci("attach", f"{repo}:1.0.0", report, "--artifact-type", "application/sarif+json")
    assert not_json.exit_code == 2 and "not valid JSON" in not_json.stderr
    bad_type = mloci("attach", f"{repo}:1.0.0", report, "--artifact-type", "not a type")
    assert bad_type.exit_code == 2 and "not a media type" in bad_type.stderr
    no_file = mloci("attach", f"{repo}:1.0.0", tmp_path / "nope", "--artifact-type", "text/plain")
    assert no_file.exit_code == 2
    no_subject = mloci("attach", f"{repo}:9.9.9", report, "--artifact-type", "text/plain")
    assert no_subject.exit_code == 4
    assert run_json(mloci, "discover", f"{repo}:1.0.0")["referrers"] == []


def test_concurrent_attaches_to_one_subject_all_land_in_the_fallback_index(
    mloci: Runner, registry: Registry, bundle: Path, tmp_path: Path
) -> None:
    repo = f"{registry.host}/ml/churn"
    digest = push(mloci, bundle, repo)
    subject = Reference.parse(f"{repo}:1.0.0")
    writers = 6
    files = []
    for n in range(writers):
        path = tmp_path / f"report-{n}.json"
        path.write_text(json.dumps({"run": n}))
        files.append(path)
    barrier = threading.Barrier(writers)
    digests: list[str] = []
    errors: list[BaseException] = []

    def write(path: Path) -> None:
        try:
            barrier.wait(timeout=10)
            result = attach_file(subject, path, artifact_type="application/vnd.mloci.evaluation.v1+json")
            digests.append(str(result.digest))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(path,)) for path in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(set(digests)) == writers
    listed = {m["digest"] for m in fallback_index(registry, "ml/churn", digest)["manifests"]}
    assert listed == set(digests)
    found = discover(subject)
    assert {str(n.descriptor.digest) for n in found.referrers} == set(digests)
    assert all(n.kind == "evaluation" for n in found.referrers)


def test_attach_and_discover_in_the_local_store(mloci: Runner, bundle: Path, tmp_path: Path) -> None:
    digest = push(mloci, bundle)
    report = tmp_path / "scan.sarif"
    report.write_text(json.dumps({"version": "2.1.0", "runs": []}))
    attached = run_json(
        mloci, "attach", "churn-model:1.0.0", report, "--artifact-type", "application/sarif+json"
    )
    assert attached["subjectDigest"] == digest
    sbom = run_json(mloci, "sbom", "churn-model:1.0.0", "--attach")
    tree = run_json(mloci, "discover", f"churn-model@{digest}")
    kinds = sorted(n["kind"] for n in tree["referrers"])
    assert kinds == ["sbom: CycloneDX", "scan: SARIF"]
    assert sbom["attached"]["digest"] in {n["digest"] for n in tree["referrers"]}
