"""What an attached artifact is, by its artifact type: one table for ``discover`` and policies."""

from __future__ import annotations

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


def kind_of(artifact_type: str | None) -> Kind | None:
    """The kind of an artifact type, or None when unknown."""
    if not artifact_type:
        return None
    if artifact_type.startswith(mt.SIGSTORE_BUNDLE_PREFIX):
        return _SIGSTORE
    return KINDS.get(artifact_type)


def requirement_types() -> dict[str, tuple[str, ...]]:
    """Each policy requirement name with the artifact types that satisfy it (any one)."""
    table: dict[str, tuple[str, ...]] = {}
    for media_type, kind in KINDS.items():
        if kind.requirement is not None:
            table[kind.requirement] = (*table.get(kind.requirement, ()), media_type)
    return table
