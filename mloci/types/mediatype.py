"""Media types mloci reads and writes, in one place."""

from __future__ import annotations

from typing import Final

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"

MANIFEST_TYPES: Final = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_TYPES: Final = (OCI_INDEX, DOCKER_MANIFEST_LIST)

# CNCF ModelPack model-spec v1 (modelpack/model-spec, specs-go/v1/mediatype.go).
MODEL_ARTIFACT: Final = "application/vnd.cncf.model.manifest.v1+json"
MODEL_CONFIG: Final = "application/vnd.cncf.model.config.v1+json"
MODEL_LAYER_PREFIX: Final = "application/vnd.cncf.model."
LAYER_KINDS: Final = ("weight", "weight.config", "doc", "code", "dataset")


def model_layer(kind: str, packing: str = "raw") -> str:
    """``application/vnd.cncf.model.<kind>.v1.<packing>`` (packing: raw, tar, tar+gzip, tar+zstd)."""
    return f"{MODEL_LAYER_PREFIX}{kind}.v1.{packing}"


def parse_model_layer(media_type: str) -> tuple[str, str] | None:
    """The (kind, packing) of a ModelPack layer media type, or None for anything else."""
    if not media_type.startswith(MODEL_LAYER_PREFIX):
        return None
    kind, sep, packing = media_type[len(MODEL_LAYER_PREFIX) :].rpartition(".v1.")
    if not sep or kind not in LAYER_KINDS:
        return None
    return kind, packing


# What mloci writes as artifacts of its own.
PROMOTION: Final = "application/vnd.mloci.promotion.v1+json"
PYTHON_PACKAGE: Final = "application/vnd.mloci.python.package.v1+json"
PYTHON_WHEEL: Final = "application/vnd.mloci.python.wheel.v1+zip"
PYTHON_SDIST: Final = "application/vnd.mloci.python.sdist.v1.tar+gzip"
PYTHON_CORE_METADATA: Final = "application/vnd.mloci.python.core-metadata.v1"
MODEL_IMAGE_VOLUME: Final = "application/vnd.mloci.model.image.v1+json"  # index annotation only
DOCTOR_PROBE: Final = "application/vnd.mloci.doctor.v1"
DOCTOR_REFERRER: Final = "application/vnd.mloci.doctor.referrer.v1"
SCAN: Final = "application/vnd.mloci.scan.v1+json"
EVALUATION: Final = "application/vnd.mloci.evaluation.v1+json"
TEST_RESULTS: Final = "application/vnd.mloci.test-results.v1+json"

# Docker's image formats (read; their OCI twins are written).
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_TAR: Final = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_TAR_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# Supply-chain documents other tools write too.
CYCLONEDX_JSON: Final = "application/vnd.cyclonedx+json"
CYCLONEDX_XML: Final = "application/vnd.cyclonedx+xml"
CYCLONEDX: Final = "application/vnd.cyclonedx"
SPDX_JSON: Final = "application/spdx+json"
SPDX_JSON_COSIGN: Final = "text/spdx+json"  # what cosign attach sbom uses for SPDX JSON
SPDX_TEXT: Final = "text/spdx"
DSSE_ENVELOPE: Final = "application/vnd.dsse.envelope.v1+json"
IN_TOTO_JSON: Final = "application/vnd.in-toto+json"
COSIGN_SIMPLE_SIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGSTORE_BUNDLE_PREFIX: Final = "application/vnd.dev.sigstore.bundle"
NOTARY_SIGNATURE: Final = "application/vnd.cncf.notary.signature"
SARIF_JSON: Final = "application/sarif+json"
TRIVY_REPORT: Final = "application/vnd.trivy.report+json"
JUNIT_XML: Final = "application/junit+xml"
