"""What an attached artifact is, by its artifact type: one table for ``discover`` and policies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from mloci.types import mediatype as mt


@dataclass(frozen=True)
class Kind:
    label: str  # shown by discover: 'sbom: CycloneDX'
    requirement: str | None  # the name a policy's `require:` uses, when one covers it


KINDS: Final[dict[str, Kind]] = {
    mt.CYCLONEDX_JSON: Kind("sbom: CycloneDX", "sbom"),
    mt.CYCLONEDX_XML: Kind("sbom: CycloneDX", "sbom"),
    mt.CYCLONEDX: Kind("sbom: CycloneDX", "sbom"),
    mt.SPDX_JSON: Kind("sbom: SPDX", "sbom"),
    mt.SPDX_JSON_COSIGN: Kind("sbom: SPDX", "sbom"),
    mt.SPDX_TEXT: Kind("sbom: SPDX", "sbom"),
    mt.DSSE_ENVELOPE: Kind("attestation: DSSE / in-toto", "provenance"),
    mt.IN_TOTO_JSON: Kind("attestation: in-toto", "provenance"),
    mt.PROMOTION: Kind("promotion record", None),
    mt.NOTARY_SIGNATURE: Kind("signature: Notary", None),
    mt.SARIF_JSON: Kind("scan: SARIF", "scan"),
    mt.SCAN: Kind("scan", "scan"),
    mt.TRIVY_REPORT: Kind("scan: Trivy", "scan"),
    mt.EVALUATION: Kind("evaluation", "evaluation"),
    mt.TEST_RESULTS: Kind("test results", "test-results"),
    mt.JUNIT_XML: Kind("test results: JUnit", "test-results"),
}
_SIGSTORE: Final = Kind("signature: sigstore bundle", None)
# The in-toto predicate of signed test results (mloci test --attach): an attestation, not provenance.
TEST_RESULT_PREDICATE: Final = "https://in-toto.io/attestation/test-result/v0.1"


def kind_of(artifact_type: str | None, annotations: Mapping[str, str] | None = None) -> Kind | None:
    """The kind of an artifact type, or None when unknown.

    A sigstore bundle is an attestation when its ``dev.sigstore.bundle.predicateType`` annotation
    (cosign ``specs/BUNDLE_SPEC.md``) names another predicate than cosign's image signature.
    """
    if not artifact_type:
        return None
    if artifact_type.startswith(mt.SIGSTORE_BUNDLE_PREFIX):
        predicate = (annotations or {}).get("dev.sigstore.bundle.predicateType")
        if predicate and predicate != "https://sigstore.dev/cosign/sign/v1":
            return Kind(f"attestation: sigstore bundle ({predicate})", None)
        return _SIGSTORE
    return KINDS.get(artifact_type)


def requirement_types() -> dict[str, tuple[str, ...]]:
    """Each policy requirement name with the artifact types that satisfy it (any one)."""
    table: dict[str, tuple[str, ...]] = {}
    for media_type, kind in KINDS.items():
        if kind.requirement is not None:
            table[kind.requirement] = (*table.get(kind.requirement, ()), media_type)
    return table
