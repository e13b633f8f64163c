"""A policy file's schema: what an artifact must prove before it may enter an environment.

Evaluated by :mod:`mloci.ops.policy`; source of ``schemas/policy.schema.json``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AGE_PATTERN = r"^([0-9]+)\s*([smhdw])$|^P([0-9]+)D$"


class IdentitySigner(BaseModel):
    """A keyless signer: certificate identity (SAN) and OIDC issuer, each exact or a full-match regexp."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: str | None = Field(default=None, description="Certificate SAN, exact.")
    identity_regexp: str | None = Field(default=None, description="Certificate SAN, full-match regexp.")
    issuer: str | None = Field(default=None, description="OIDC issuer, exact.")
    issuer_regexp: str | None = Field(default=None, description="OIDC issuer, full-match regexp.")


class SignatureRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[str] = Field(
        default_factory=list, description="Public key files (PEM); relative to the policy file."
    )
    identities: list[IdentitySigner] = Field(
        default_factory=list, description="Keyless signers (sigstore bundles with a Fulcio certificate)."
    )
    trusted_root: str | None = Field(
        default=None, description="sigstore trusted_root.json for identities; relative to the policy file."
    )
    require_tlog: bool = Field(
        default=False,
        description="Key signatures count only with a transparency-log entry verified against trusted_root.",
    )
    minimum: int = Field(
        default=1, ge=1, description="How many distinct keys or identities must have signed."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations each signature must carry."
    )

    @model_validator(mode="after")
    def _some_signer(self) -> SignatureRule:
        if not self.keys and not self.identities:
            raise ValueError("name at least one key or identity")
        return self


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
