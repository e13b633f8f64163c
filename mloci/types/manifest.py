"""OCI descriptors, image manifests and image indexes as frozen, typed values.

A manifest's digest is the digest of its exact bytes. New manifests are built as
models and serialized once by :func:`canonical_json`; manifests read from a store
keep their original bytes next to the parsed model, so nothing is re-serialized.
"""

from __future__ import annotations

import json
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mloci.errors import IntegrityError, MlociError
from mloci.types import mediatype
from mloci.types.digest import Digest


def canonical_json(value: Any) -> bytes:
    """The one serialization mloci writes: sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow")

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        """Parse wire bytes; IntegrityError (content is not what it claims to be) when they do not fit."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise IntegrityError(f"malformed {cls.__name__.lower()}: {_first_problem(exc)}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return "not JSON"
    where = ".".join(str(p) for p in first["loc"])
    if not where and first["type"] in ("model_type", "dict_type"):
        return "not a JSON object"
    return f"{where}: {first['msg']}" if where else str(first["msg"])


class Platform(_Wire):
    architecture: str
    os: str
    os_version: str | None = Field(default=None, alias="os.version")
    os_features: list[str] | None = Field(default=None, alias="os.features")
    variant: str | None = None


class Descriptor(_Wire):
    media_type: str = Field(alias="mediaType")
    digest: Digest
    size: int = Field(ge=0)
    annotations: dict[str, str] | None = None
    artifact_type: str | None = Field(default=None, alias="artifactType")
    urls: list[str] | None = None
    platform: Platform | None = None
    data: str | None = None

    @classmethod
    def of_bytes(cls, media_type: str, data: bytes, **fields: Any) -> Descriptor:
        return cls(media_type=media_type, digest=Digest.of(data), size=len(data), **fields)

    def annotation(self, key: str) -> str | None:
        return (self.annotations or {}).get(key)


class Manifest(_Wire):
    schema_version: int = Field(default=2, alias="schemaVersion")
    media_type: str = Field(default=mediatype.OCI_MANIFEST, alias="mediaType")
    artifact_type: str | None = Field(default=None, alias="artifactType")
    config: Descriptor
    layers: list[Descriptor] = Field(default_factory=list)
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None

    def annotation(self, key: str) -> str | None:
        return (self.annotations or {}).get(key)

    @property
    def kind(self) -> str:
        """artifactType, falling back to the config media type as the image spec says."""
        return self.artifact_type or self.config.media_type


class Index(_Wire):
    schema_version: int = Field(default=2, alias="schemaVersion")
    media_type: str = Field(default=mediatype.OCI_INDEX, alias="mediaType")
    artifact_type: str | None = Field(default=None, alias="artifactType")
    manifests: list[Descriptor] = Field(default_factory=list)
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None


NOT_A_MANIFEST_HINT = (
    "name a tag or a manifest digest, not the digest of a file: only a manifest can be pulled, "
    "tagged, signed, promoted or attached to"
)


def check_manifest(
    data: bytes, media_type: str, *, what: str, error: type[MlociError] = IntegrityError
) -> Manifest | Index:
    """``data`` parsed as the image manifest or index ``media_type`` says it is.

    Stores call this before handing manifest bytes on, so every caller may rely on them being a
    manifest. Anything else (a layer blob named by its digest, text, truncated JSON) raises
    ``error`` saying "<what> is not a manifest": IntegrityError for content read locally, the
    registry adapter passes RegistryError (a registry must only serve manifests there).
    """
    model: type[Manifest] | type[Index] = Index if media_type in mediatype.INDEX_TYPES else Manifest
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise error(
            f"{what} is not {'an index' if model is Index else 'a manifest'} ({_first_problem(exc)})",
            hint=NOT_A_MANIFEST_HINT,
        ) from None
