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
