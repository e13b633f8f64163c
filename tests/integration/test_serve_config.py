"""``mloci serve --config``: the project's environments (order, aliases, repositories, policies) in the
catalog, the API and the environment filter; and each signature and attestation verified on version pages."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from catalog_helpers import SLOW, attach_trust, model_version, populate, running_catalog
from helpers import SHARED, Registry, Runner

from mloci.catalog import CatalogConfig
from mloci.cli.serve import configured_environments
from mloci.store import open_store
from mloci.types import Reference
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest

SLSA = "https://slsa.dev/provenance/v1"


def write_config(tmp_path: Path, host: str) -> Path:
    """dev lives in its own repository, staging in place, production as tag ``prod`` behind a policy."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "prod.yaml").write_text("metrics: ['auc >= 0.85']\n")
    config = tmp_path / "mloci.toml"
    config.write_text(
        f"""
[[environments]]
name = "dev"
repository = "{host}/ml-dev/churn-model"

[[environments]]
name = "staging"
repository = "{host}/ml/churn-model"

[[environments]]
name = "production"
alias = "prod"
repository = "{host}/ml/churn-model"
policy = "policies/prod.yaml"
"""
    )
    return config


def test_configured_environments_in_order_with_aliases_and_filters(
    registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    digests = populate(mloci, tmp_path, f"{registry.host}/ml/")
    (tmp_path / "dev").mkdir()
    dev = model_version(tmp_path / "dev", "1.3.0", {"auc": 0.95})
    assert mloci("push", dev, f"{registry.host}/ml-dev/churn-model", "-q").exit_code == 0
    assert mloci("promote", f"{registry.host}/ml-dev/churn-model:1.3.0", "--to", "dev").exit_code == 0
    policies: dict[str, Path] = {}
    environments = configured_environments(write_config(tmp_path, registry.host), policies)
    assert policies == {"production": tmp_path / "policies" / "prod.yaml"}
    config = CatalogConfig(registry=registry.host, namespace="ml", refresh=0, environments=environments)
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        listing = http.get("/api/v1/models").json()
        assert listing["environments"] == ["dev", "staging", "production"]
        churn, fraud = listing["models"]
        assert list(churn["environments"].items()) == [
            ("dev", "1.3.0"),  # read from the dev environment's own repository
            ("staging", "1.2.0"),
            ("production", "1.1.0"),  # the environment's alias is the tag prod
        ]
        assert fraud["environments"] == {"dev": None, "staging": None, "production": None}

        def names(**params: str) -> list[str]:
            response = http.get("/api/v1/models", params=params)
            assert response.status_code == 200, response.text
            return [m["name"] for m in response.json()["models"]]

        assert names(env="production") == ["churn-model"]
        assert names(q="env:dev") == ["churn-model"]
        assert names(env="prod") == []  # environments go by name, not by tag

        detail = http.get("/api/v1/models/churn-model").json()
        rows = [(e["name"], e["alias"], e["version"], e["policy"]) for e in detail["environments"]]
        assert rows == [
            ("dev", "dev", "1.3.0", None),
            ("staging", "staging", "1.2.0", None),
            ("production", "prod", "1.1.0", "prod.yaml"),
        ]
        assert detail["environments"][0]["repository"] == f"{registry.host}/ml-dev/churn-model"
        assert detail["environments"][2]["digest"] == digests["1.1.0"]

        page = http.get("/models/churn-model").text
        assert page.index("<b>dev</b>") < page.index("<b>staging</b>") < page.index("<b>production</b>")
        assert "(tag prod)" in page and "policy prod.yaml" in page and "ml-dev/churn-model" in page
        timeline = page[page.index('id="timeline"') :]
        assert timeline.index("<h3>staging</h3>") < timeline.index("<h3>production</h3>")
        assert "<h3>prod</h3>" not in timeline  # records written as prod are production's (its alias)
        assert timeline.index("<h3>dev</h3>") < timeline.index("<h3>staging</h3>")  # from ml-dev/churn-model
        dev = http.get("/api/v1/models/churn-model/history", params={"environment": "dev"}).json()
        assert [(h["version"], h["alias"]) for h in dev["history"]] == [("1.3.0", "dev")]
        production = http.get("/api/v1/models/churn-model/history", params={"environment": "production"})
        assert [h["version"] for h in production.json()["history"]] == ["1.1.0", "1.0.0"]
        home = http.get("/", params={"env": "production"}).text
        assert 'href="/models/churn-model"' in home and "/models/team/fraud-detector" not in home
        assert '<option value="production" selected>' in home

        refused = http.post(
            "/api/v1/models/churn-model/promote",
            json={"reference": "1.2.0", "to": "qa"},
            headers={"Authorization": "Basic dXNlcjpwYXNz"},
        )
        assert refused.status_code == 400, refused.text
        assert "unknown environment 'qa'" in refused.json()["errors"][0]["message"]
        # An environment under another tag, and one in its own repository, as `mloci promote` does them.
        for environment in ("production", "dev"):
            promoted = http.post(
                "/api/v1/models/churn-model/promote",
                json={"reference": "1.2.0", "to": environment, "reason": "from the catalog"},
                headers={"Authorization": "Basic dXNlcjpwYXNz"},
            )
            assert promoted.status_code == 200, promoted.text
        tagged = {
            f"ml/churn-model:{digests['1.2.0']}": "prod",
            f"ml-dev/churn-model:{digests['1.2.0']}": "dev",
        }
        for place, tag in tagged.items():
            repository, digest = place.split(":", 1)
            inspected = mloci("inspect", f"{registry.host}/{repository}:{tag}", "--json")
            assert json.loads(inspected.stdout)["digest"] == digest, place
        detail = http.get("/api/v1/models/churn-model").json()
        assert [(e["name"], e["version"]) for e in detail["environments"]] == [
            ("dev", "1.2.0"),
            ("staging", "1.2.0"),
            ("production", "1.2.0"),
        ]
        back = http.post(
            "/api/v1/models/churn-model/rollback",
            json={"environment": "production"},
            headers={"Authorization": "Basic dXNlcjpwYXNz"},
        )
        assert back.status_code == 200, back.text
        inspected = mloci("inspect", f"{registry.host}/ml/churn-model:prod", "--json")
        assert json.loads(inspected.stdout)["digest"] == digests["1.1.0"]


def test_without_configuration_every_alias_is_an_environment(
    registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    config = CatalogConfig(registry=registry.host, namespace="ml", refresh=0)
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        listing = http.get("/api/v1/models").json()
        assert listing["environments"] == ["prod", "staging"]
        detail = http.get("/api/v1/models/churn-model").json()
        assert [(e["name"], e["version"], e["configured"]) for e in detail["environments"]] == [
            ("prod", "1.1.0", False),
            ("staging", "1.2.0", False),
        ]
        assert '<option value="staging">' in http.get("/").text


def test_serve_config_errors(mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = mloci("serve", "--config", tmp_path / "nope.toml")
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    untabled = mloci("serve", "--config", tmp_path / "pyproject.toml")
    assert untabled.exit_code == 2 and "no [tool.mloci] table" in untabled.stderr
    bad = tmp_path / "mloci.toml"
    bad.write_text('[[environments]]\nname = "prod"\nrepository = "r.example.com/m"\npolicy = "gone.yaml"\n')
    monkeypatch.chdir(tmp_path)  # found from the working directory, as other commands find it
    gone = mloci("serve")
    assert gone.exit_code == 2 and "gone.yaml: no such file" in gone.stderr
    half = mloci("serve", "--config", tmp_path / "pyproject.toml", "--verify-identity", "me@example.com")
    assert half.exit_code == 2


# -- verification of each signature and attestation ------------------------------------------


DSSE = "application/vnd.dsse.envelope.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle"


def _checks(nodes: list[dict[str, object]]) -> dict[str, object]:
    """What each node of the tree is (kind, or wire form and predicate type for what carries a
    signature) → its verification."""
    found: dict[str, object] = {}
    for node in nodes:
        check = node["verification"]
        kind = str(node["kind"])
        if isinstance(check, dict):
            form = "dsse" if node["artifactType"] == DSSE else "bundle"
            assert str(node["artifactType"]).startswith((DSSE, BUNDLE))
            kind = f"{form} {check.get('predicateType') or 'signature'}"
        assert kind not in found, kind
        found[kind] = check
        children = node["referrers"]
        assert isinstance(children, list)
        found.update(_checks(children))
    return found


def _verifications(nodes: list[dict[str, object]]) -> list[object]:
    found: list[object] = []
    for node in nodes:
        found.append(node["verification"])
        children = node["referrers"]
        assert isinstance(children, list)
        found += _verifications(children)
    return found


def test_version_page_verifies_each_signature_and_attestation(
    registry: Registry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    reference = f"{registry.host}/ml/churn-model:1.2.0"
    attach_trust(mloci, tmp_path, reference, monkeypatch)  # signature and SLSA attestation: sigstore bundles
    enveloped = mloci("attest", reference, "--key", tmp_path / "signing.key", "--format", "dsse")
    assert enveloped.exit_code == 0, enveloped.stderr
    assert mloci("keygen", "--output-key-prefix", tmp_path / "stranger").exit_code == 0
    keys = (tmp_path / "stranger.pub", tmp_path / "signing.pub")
    config = CatalogConfig(registry=registry.host, namespace="ml", refresh=0, verify_keys=keys)
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        detail = http.get("/api/v1/models/churn-model/versions/1.2.0").json()
        checks = _checks(detail["referrers"])
        assert set(checks) == {
            "bundle signature",
            f"bundle {SLSA}",
            f"dsse {SLSA}",
            "sbom: CycloneDX",
            "test results",
            "promotion record",
        }
        signature = checks["bundle signature"]
        assert isinstance(signature, dict)
        assert signature["verified"] is True and signature["rule"] == "signing.pub"
        assert signature["detail"] == "signature verified with signing.pub"
        for form in ("bundle", "dsse"):
            attestation = checks[f"{form} {SLSA}"]
            assert isinstance(attestation, dict)
            assert attestation["verified"] is True and attestation["rule"] == "signing.pub"
            assert attestation["detail"] == "attestation verified with signing.pub"
        for unsigned in ("sbom: CycloneDX", "test results", "promotion record"):
            assert checks[unsigned] is None  # nothing to verify: no signature of its own
        page = http.get("/models/churn-model/versions/1.2.0").text
        assert page.count('<span class="badge ok">verified</span>') >= 3 + 1  # three referrers, the .sig list
        assert SLSA in page

    with running_catalog(
        CatalogConfig(registry=registry.host, namespace="ml", refresh=0, verify_keys=keys[:1])
    ) as server:
        stranger = httpx.get(f"{server.url}/api/v1/models/churn-model/versions/1.2.0", timeout=SLOW).json()
    failed = [check for check in _verifications(stranger["referrers"]) if check is not None]
    assert len(failed) == 3
    for check in failed:
        assert check["verified"] is False and check["rule"] is None
        assert "another key" in str(check["detail"]) or "does not match" in str(check["detail"]), check


def _vector(name: str) -> dict[str, object]:
    value: dict[str, object] = json.loads(
        next((SHARED / "interop" / "sigstore").glob(f"{name}-*.json")).read_text()
    )
    return value


def _attach_bundle(registry: Registry, repo: str, subject: str, data: bytes) -> None:
    """A sigstore bundle referrer of ``subject`` laid out as cosign v3 writes it."""
    ref = Reference.parse(f"{registry.host}/{repo}")
    store = open_store(ref)
    try:
        from mloci.ops import referrers

        empty = Blob.of_bytes("application/vnd.oci.empty.v1+json", b"{}")
        kind = "application/vnd.dev.sigstore.bundle.v0.3+json"
        layer = Blob.of_bytes(kind, data)
        for blob in (empty, layer):
            store.push_blob(ref.repository, blob)
        subject_descriptor = store.resolve(ref.with_digest(Digest.parse(subject)))
        manifest = Manifest(
            artifact_type=kind,
            config=empty.descriptor,
            layers=[layer.descriptor],
            subject=Descriptor(
                media_type=subject_descriptor.media_type,
                digest=subject_descriptor.digest,
                size=subject_descriptor.size,
            ),
            annotations={"dev.sigstore.bundle.content": "dsse-envelope"},
        )
        referrers.attach(store, ref, manifest)
    finally:
        store.close()


def test_keyless_bundles_are_checked_against_the_identity(
    registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    pytest.importorskip("sigstore")
    digests = populate(mloci, tmp_path, f"{registry.host}/ml/")
    v = _vector("06")
    # A genuine keyless SLSA bundle, but over another artifact: attached here it must not verify.
    _attach_bundle(registry, "ml/churn-model", digests["1.0.0"], json.dumps(v["bundle"]).encode())
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(v["trusted_root"]))
    config = CatalogConfig(
        registry=registry.host,
        namespace="ml",
        refresh=0,
        verify_identity=str(v["expected_identity"]),
        verify_issuer=str(v["expected_issuer"]),
        trusted_root=root,
    )
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        detail = http.get("/api/v1/models/churn-model/versions/1.0.0").json()
        [bundle] = [r for r in detail["referrers"] if r["kind"] != "promotion record"]
        assert bundle["verification"]["verified"] is False
        assert (
            digests["1.0.0"] in bundle["verification"]["detail"]
            or "subject" in bundle["verification"]["detail"]
        )
        [summary] = detail["signatures"]  # what `mloci verify` answers for the identity
        assert summary["key"] == f"{v['expected_identity']} (issuer {v['expected_issuer']})"
        assert summary["verified"] is False and "verif" in summary["detail"]
        assert "not verified" in http.get("/models/churn-model/versions/1.0.0").text


def test_a_hostile_bundle_is_not_verified_and_renders_inert(
    registry: Registry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_KEY_PASSWORD", "")
    digests = populate(mloci, tmp_path, f"{registry.host}/ml/")
    hostile = (
        b'{"mediaType": "<script>alert(1)</script>", "verificationMaterial": "<img src=x onerror=alert(2)>"}'
    )
    _attach_bundle(registry, "ml/churn-model", digests["1.1.0"], hostile)
    assert mloci("keygen", "--output-key-prefix", tmp_path / "k", "--allow-unencrypted").exit_code == 0
    config = CatalogConfig(
        registry=registry.host, namespace="ml", refresh=0, verify_keys=(tmp_path / "k.pub",)
    )
    with running_catalog(config) as server, httpx.Client(base_url=server.url, timeout=SLOW) as http:
        detail = http.get("/api/v1/models/churn-model/versions/1.1.0").json()
        [bundle] = [r for r in detail["referrers"] if r["kind"] != "promotion record"]
        assert bundle["verification"]["verified"] is False
        assert "not a sigstore bundle" in bundle["verification"]["detail"]
        page = http.get("/models/churn-model/versions/1.1.0")
    assert page.status_code == 200
    assert "<script" not in page.text.lower() and "<img" not in page.text.lower()
    assert "not verified" in page.text
