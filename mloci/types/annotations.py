"""Annotation keys: the OCI pre-defined ones, ModelPack's, and mloci's own (``dev.mloci.*``)."""

from __future__ import annotations

from typing import Final

TITLE: Final = "org.opencontainers.image.title"
VERSION: Final = "org.opencontainers.image.version"
REVISION: Final = "org.opencontainers.image.revision"
CREATED: Final = "org.opencontainers.image.created"
DESCRIPTION: Final = "org.opencontainers.image.description"
LICENSES: Final = "org.opencontainers.image.licenses"
AUTHORS: Final = "org.opencontainers.image.authors"
SOURCE: Final = "org.opencontainers.image.source"
REF_NAME: Final = "org.opencontainers.image.ref.name"

MODEL_FILEPATH: Final = "org.cncf.model.filepath"
MODEL_FILE_METADATA: Final = "org.cncf.model.file.metadata+json"

NAME: Final = "dev.mloci.name"
FRAMEWORK: Final = "dev.mloci.framework"
METRICS: Final = "dev.mloci.metrics"
GIT_DIRTY: Final = "dev.mloci.git.dirty"
ROLE: Final = "dev.mloci.role"
ROLE_BUNDLE_MANIFEST: Final = "bundle-manifest"
ROLE_LOCK_FILE: Final = "lock-file"
LOCK_FORMAT: Final = "dev.mloci.lock.format"  # pylock, uv or requirements (hashed)
PREDICATE_TYPE: Final = "in-toto.io/predicate-type"  # on DSSE referrers: the statement's predicate type
# Which repository an untagged manifest in the local OCI layout belongs to.
REPOSITORY: Final = "dev.mloci.repository"

# ORAS: the layer is a tarred directory to unpack (its plain files are raw despite tar media types).
ORAS_UNPACK: Final = "io.deis.oras.content.unpack"
BASE_NAME: Final = "org.opencontainers.image.base.name"
BASE_DIGEST: Final = "org.opencontainers.image.base.digest"

# Inference images and image volumes: which model they carry.
MODEL_DIGEST: Final = "dev.mloci.model.digest"
FORMAT: Final = "dev.mloci.format"
SBOM_SPEC: Final = "dev.mloci.sbom.spec"

# Promotion records.
PROMOTION_ENVIRONMENT: Final = "dev.mloci.promotion.environment"
PROMOTION_PREVIOUS: Final = "dev.mloci.promotion.previous"
PROMOTION_ACTOR: Final = "dev.mloci.promotion.actor"

# Python package artifacts.
PYTHON_FILETYPE: Final = "dev.mloci.python.filetype"  # bdist_wheel | sdist
PYTHON_REQUIRES_PYTHON: Final = "dev.mloci.python.requires-python"
PYTHON_CORE_METADATA: Final = "dev.mloci.python.core-metadata"  # digest of the file's metadata layer
PYTHON_METADATA_FOR: Final = "dev.mloci.python.metadata-for"  # on a metadata layer: the file it describes
PYTHON_YANKED: Final = "dev.mloci.python.yanked"  # manifest: present = yanked; the value is the reason

# cosign's simple-signing layers.
COSIGN_SIGNATURE: Final = "dev.cosignproject.cosign/signature"
