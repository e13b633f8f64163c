"""The catalog's values: frozen pydantic models, the schema of the REST API (``/api/v1/openapi.json``).

Everything here is read from the registry and is untrusted text: the HTML layer escapes it, the
JSON layer serializes it as data. Field names are camelCase on the wire (``by_alias``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, alias_generator=to_camel)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class Badges(_Value):
    """What is attached to a version: each true when at least one attachment of that kind exists."""

    signed: bool = False
    sbom: bool = False
    provenance: bool = False
    tests: bool = False


class VersionSummary(_Value):
    """One version of a model, as the versions table and the models list show it."""

    digest: str
    version: str | None = None
    tags: list[str] = Field(default_factory=list, description="immutable version tags")
    aliases: list[str] = Field(default_factory=list, description="moving tags: environments, latest…")
    revision: str | None = Field(default=None, description="git commit the version was built from")
    created: str | None = None
    size: int = 0
    framework: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    badges: Badges = Field(default_factory=Badges)
    attachments: int = 0


class Promotion(_Value):
    """One promotion record read back from the registry."""

    environment: str
    alias: str
    digest: str
    previous: str | None = None
    version: str | None = None
    previous_version: str | None = None
    actor: str
    timestamp: str
    reason: str | None = None
    ci_run_url: str | None = None
    rollback_of: str | None = None
    record: str = Field(description="digest of the promotion record artifact")


class ModelSummary(_Value):
    """A row of the models list."""

    name: str
    repository: str
    description: str | None = None
    framework: str | None = None
    license: str | None = None
    owners: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    latest: VersionSummary | None = None
    versions: int = 0
    environments: dict[str, str | None] = Field(
        default_factory=dict,
        description="environment → version (or digest) it names; configured environments in "
        "promotion order (null: not promoted there yet), else every alias found",
    )
    last_promotion: Promotion | None = None


class EnvironmentTarget(_Value):
    """What one environment points at for a model: configured (``mloci.toml``) or an alias found."""

    name: str
    alias: str = Field(description="the moving tag")
    repository: str = Field(description="where the alias lives")
    version: str | None = None
    digest: str | None = Field(default=None, description="None: not promoted there yet")
    configured: bool = Field(default=False, description="from the server's project configuration")
    policy: str | None = Field(default=None, description="name of the policy file promotions must pass")


class ModelCard(_Value):
    """The model card: what the latest version's bundle manifest says about the model."""

    description: str | None = None
    intended_use: str | None = None
    notes: str | None = None
    features: list[str] = Field(default_factory=list)
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    outputs: list[dict[str, Any]] = Field(default_factory=list)
    runtime: dict[str, Any] | None = None
    dependencies: dict[str, Any] | None = None
    governance: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None
    hardware: list[dict[str, Any]] = Field(default_factory=list)
    authors: list[str] = Field(default_factory=list)
    license: str | None = None
    framework: str | None = None
    source: str | None = Field(default=None, description="source repository URL, when recorded")


class ModelDetail(_Value):
    """A model page: the summary, the card, every version, and the promotion history."""

    model: ModelSummary
    card: ModelCard
    versions: list[VersionSummary]
    history: list[Promotion]
    environments: list[EnvironmentTarget] = Field(
        default_factory=list, description="in promotion order when configured, else by alias name"
    )


class FileEntry(_Value):
    path: str | None
    kind: str
    media_type: str
    digest: str
    size: int


class Verification(_Value):
    """A signature or attestation referrer checked against the server's trust rules
    (``--verify-key``, ``--verify-identity``/``--verify-issuer``)."""

    verified: bool
    detail: str = Field(description="what verified it, or why it does not verify")
    rule: str | None = Field(default=None, description="the key file or identity that verified it")
    signer: str | None = Field(default=None, description="'key …' or the certificate identity")
    predicate_type: str | None = Field(default=None, description="an attestation's in-toto predicate type")


class Referrer(_Value):
    """One attachment (signature, SBOM, provenance, test results, promotion record…) and what refers to it."""

    digest: str
    artifact_type: str | None = None
    kind: str | None = None
    media_type: str
    size: int
    created: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    verification: Verification | None = Field(
        default=None, description="for signatures and attestations, when the server has trust rules"
    )
    referrers: list[Referrer] = Field(default_factory=list)


class Image(_Value):
    """An inference image built from a model version (it carries the model digest annotation)."""

    repository: str
    digest: str
    tags: list[str] = Field(default_factory=list)


class Lineage(_Value):
    datasets: list[dict[str, Any]] = Field(default_factory=list)
    training_run: str | None = None
    parent_model: str | None = None
    parent_name: str | None = Field(default=None, description="the parent's model name, when in this catalog")
    parent_version: str | None = Field(default=None, description="the parent's version or digest, ditto")
    images: list[Image] = Field(default_factory=list)


class SignatureCheck(_Value):
    """The version's signatures checked (as ``mloci verify``) against one of the server's trust rules:
    a ``--verify-key`` public key, or the ``--verify-identity``/``--verify-issuer`` keyless signer."""

    key: str = Field(description="the key file's name, or the keyless identity and issuer")
    verified: bool
    detail: str


class VersionDetail(_Value):
    """A version page: files, annotations, attachments, lineage and pull commands pinned by digest."""

    name: str
    repository: str
    reference: str = Field(description="repository@digest, what to pull")
    summary: VersionSummary
    media_type: str
    artifact_type: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    bundle: dict[str, Any] | None = None
    files: list[FileEntry] = Field(default_factory=list)
    referrers: list[Referrer] = Field(default_factory=list)
    cosign: list[str] = Field(default_factory=list, description="cosign tags (.sig/.att/.sbom) for it")
    signatures: list[SignatureCheck] = Field(
        default_factory=list, description="verification against the server's --verify-key keys"
    )
    lineage: Lineage = Field(default_factory=Lineage)
    pull: str = Field(description="the mloci pull command, pinned by digest")


class Change(_Value):
    left: Any = None
    right: Any = None
    delta: float | None = None


class Comparison(_Value):
    """Two versions side by side: the data of ``mloci diff``."""

    left: str
    right: str
    identical: bool
    metadata: dict[str, Change] = Field(default_factory=dict)
    metrics: dict[str, Change] = Field(default_factory=dict)
    dependencies: dict[str, Change] = Field(default_factory=dict)
    files: dict[str, Change] = Field(default_factory=dict)
    unchanged_files: int = 0


class PackageFile(_Value):
    filename: str
    size: int
    digest: str
    yanked: bool = False


class PackageRelease(_Value):
    version: str
    yanked: bool = False
    yanked_reason: str | None = None
    files: list[PackageFile] = Field(default_factory=list)


class Package(_Value):
    name: str
    repository: str
    releases: list[PackageRelease] = Field(default_factory=list)


class ModelPage(_Value):
    """One page of the models list."""

    models: list[ModelSummary]
    total: int
    page: int
    limit: int
    query: str = ""
    environments: list[str] = Field(
        default_factory=list, description="environments to filter by (?env=): configured, else aliases found"
    )
