"""The promotion record: what one promotion did, as mloci stores it in the registry (a wire format)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mloci.types.digest import Digest
from mloci.types.manifest import canonical_json


class PromotionRecord(BaseModel):
    """What one promotion did, by whom, when and why. Source of ``schemas/promotion-record.schema.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: Literal[1] = Field(default=1, alias="schemaVersion")
    environment: str
    repository: str = Field(description="registry/repository the alias lives in")
    alias: str = Field(description="the tag that was moved")
    digest: Digest = Field(description="manifest digest the alias now names")
    previous: Digest | None = Field(
        default=None, description="what the alias named before (null: first promotion)"
    )
    source: str | None = Field(default=None, description="the reference the artifact was promoted from")
    actor: str
    timestamp: AwareDatetime
    reason: str | None = None
    ci_run_url: str | None = Field(default=None, alias="ciRunUrl")
    rollback_of: Digest | None = Field(
        default=None, alias="rollbackOf", description="set when this is a rollback"
    )

    def to_json(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", by_alias=True, exclude_none=True))
