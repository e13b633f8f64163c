"""A policy file's schema: what an artifact must prove before it may enter an environment.

Evaluated by :mod:`mloci.ops.policy`; source of ``schemas/policy.schema.json``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AGE_PATTERN = r"^([0-9]+)\s*([smhdw])$|^P([0-9]+)D$"


class SignatureRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[str] = Field(min_length=1, description="Public key files (PEM); relative to the policy file.")
    minimum: int = Field(default=1, ge=1, description="How many distinct keys must have signed.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations each signature must carry."
    )


class Bound(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = None
    max: float | None = None


class TestsRule(BaseModel):
    """``require: [tests]``: a test-result attestation (mloci test --attach) that says PASSED."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[str] = Field(
        min_length=1,
        description="Public keys (PEM) trusted to sign test results; relative to the policy file.",
    )
    latency: dict[Literal["p50_ms", "p99_ms", "mean_ms", "max_ms", "throughput_per_s"], Bound] = Field(
        default_factory=dict,
        description="Bounds on the attested latency measurements, e.g. {p99_ms: {max: 20}}.",
    )


class Policy(BaseModel):
    """A promotion/pull policy. Source of ``schemas/policy.schema.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signatures: SignatureRule | None = None
    require: list[str] = Field(
        default_factory=list,
        description="Attachments that must exist: sbom, provenance, scan, evaluation, test-results, tests (signed passing results, see 'tests'), or a media type.",
    )
    tests: TestsRule | None = Field(default=None, description="What 'require: [tests]' accepts.")
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
