"""A policy file's schema: what an artifact must prove before it may enter an environment.

Evaluated by :mod:`mloci.ops.policy`; source of ``schemas/policy.schema.json``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

AGE_PATTERN = r"^([0-9]+)\s*([smhdw])$|^P([0-9]+)D$"


class SignatureRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[str] = Field(min_length=1, description="Public key files (PEM); relative to the policy file.")
    minimum: int = Field(default=1, ge=1, description="How many distinct keys must have signed.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations each signature must carry."
    )


class Policy(BaseModel):
    """A promotion/pull policy. Source of ``schemas/policy.schema.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signatures: SignatureRule | None = None
    require: list[str] = Field(
        default_factory=list,
        description="Attachments that must exist: sbom, provenance, scan, evaluation, test-results, or a media type.",
    )
    metrics: list[str] = Field(default_factory=list, description="Thresholds such as 'auc >= 0.80'.")
    fields: list[str] = Field(
        default_factory=list, description="Bundle manifest fields that must be set (dotted)."
    )
    licenses: list[str] = Field(default_factory=list, description="Allowed license expressions (empty: any).")
    max_age: str | None = Field(
        default=None,
        pattern=AGE_PATTERN,
        description="e.g. '30d', '12h' or 'P30D', measured from train_time.",
    )
