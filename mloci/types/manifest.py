"""OCI descriptors, image manifests and image indexes as frozen, typed values.

A manifest's digest is the digest of its exact bytes. New manifests are built as
models and serialized once by :func:`canonical_json`; manifests read from a store
keep their original bytes next to the parsed model, so nothing is re-serialized.
"""

from __future__ import annotations

import json
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mloci.errors import RegistryError
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
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RegistryError(f"malformed {cls.__name__.lower()}: {where}: {first['msg']}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())


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
