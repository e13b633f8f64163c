"""The bundle manifest (``manifest.json``): what an ML team records about a model.

This pydantic model is the single source of truth: ``schemas/bundle-manifest.schema.json``
is generated from it (``python -m mloci.schemas``) and a test fails when the two drift.
Unknown keys are errors, so a typo never passes silently; free-form data goes under
``extensions``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from mloci.types.digest import Digest
from mloci.types.semver import SEMVER

MANIFEST_FILENAME = "manifest.json"
METRICS_FILENAME = "metrics.json"

_NAME = r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$"
# An SPDX license expression: identifiers (LicenseRef- included) joined by AND/OR/WITH, with parentheses.
_SPDX_ID = r"(?:LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9][A-Za-z0-9.+-]*)"
_SPDX_TOKEN = re.compile(rf"\(|\)|AND|OR|WITH|{_SPDX_ID}")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Number = Annotated[StrictInt | StrictFloat, AfterValidator(_finite)]
NonEmpty = Annotated[str, Field(min_length=1)]
Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")]


def _spdx(value: str) -> str:
    tokens = _SPDX_TOKEN.findall(value)
    if "".join(tokens) != value.replace(" ", "") or not tokens:
        raise ValueError(
            f"{value!r} is not an SPDX license expression (e.g. 'Apache-2.0' or 'MIT OR Apache-2.0')"
        )
    depth = 0
    expect_operand = True
    for token in tokens:
        if token == "(":
            depth += 1
            continue
        if token == ")":
            depth -= 1
            if depth < 0 or expect_operand:
                raise ValueError(f"unbalanced parentheses in license expression {value!r}")
            continue
        is_operator = token in ("AND", "OR", "WITH")
        if is_operator == expect_operand:
            raise ValueError(f"malformed license expression {value!r}")
        expect_operand = is_operator
    if depth or expect_operand:
        raise ValueError(f"incomplete license expression {value!r}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TensorSpec(_Strict):
    """One model input or output."""

    name: NonEmpty
    dtype: Literal[
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "bfloat16", "float32", "float64", "string", "complex64", "complex128",
    ]  # fmt: skip
    shape: list[StrictInt | NonEmpty | None] = Field(
        default_factory=list, description="Dimensions; a name or null marks a dynamic one (e.g. batch)."
    )
    description: str | None = None


class Dependencies(_Strict):
    python: str | None = Field(default=None, description="Python version specifier, e.g. '>=3.10,<3.13'.")
    requirements: list[str] = Field(
        default_factory=list, description="Pinned requirements (name==version), as in a lock file."
    )

    @field_validator("python")
    @classmethod
    def _python(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                SpecifierSet(value if value[0] in "<>=!~" else f"=={value}")
            except InvalidSpecifier:
                raise ValueError(f"{value!r} is not a Python version specifier") from None
        return value

    @field_validator("requirements")
    @classmethod
    def _pinned(cls, values: list[str]) -> list[str]:
        for text in values:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                raise ValueError(f"{text!r} is not a valid requirement") from None
            specs = list(req.specifier)
            if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
                raise ValueError(f"{text!r} is not pinned; use an exact version such as {req.name}==1.2.3")
        return values


class Timeouts(_Strict):
    """How long callers and orchestrators should wait."""

    request_ms: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="One inference request, end to end."
    )
    startup_s: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="Loading the model until the server is ready (readiness probe budget)."
    )


class Retries(_Strict):
    """How a caller may retry a failed request."""

    max_attempts: Annotated[int, Field(ge=1)] = Field(description="Attempts in total, the first included.")
    backoff_ms: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="Wait before the first retry; doubled for each further one."
    )
    on: list[NonEmpty] = Field(
        default_factory=list,
        description="Failures worth retrying, e.g. 'timeout', 'unavailable', 'overloaded'.",
    )


class FailureMode(_Strict):
    """A known way the model or its server fails, and what should happen then."""

    name: NonEmpty = Field(description="e.g. 'out-of-distribution', 'feature-missing', 'overloaded'.")
    description: str | None = None
    action: Literal["retry", "fallback", "reject", "degrade", "alert"] | None = Field(
        default=None, description="What the caller or platform should do."
    )
    fallback: str | None = Field(default=None, description="e.g. a rule, a default value or another model.")


class Runtime(_Strict):
    """What serving this model needs and promises."""

    cpu: Quantity | None = Field(
        default=None, description="Kubernetes-style CPU quantity, e.g. '2' or '500m'."
    )
    memory: Quantity | None = Field(default=None, description="Kubernetes-style memory quantity, e.g. '4Gi'.")
    accelerator: str | None = Field(default=None, description="e.g. 'none', 'nvidia-t4', 'nvidia-a100-80gb'.")
    latency_p50_ms: Annotated[float, Field(gt=0)] | None = None
    latency_p99_ms: Annotated[float, Field(gt=0)] | None = None
    max_concurrency: Annotated[int, Field(gt=0)] | None = None
    batch_size: Annotated[int, Field(gt=0)] | None = None
    timeouts: Timeouts | None = None
    retries: Retries | None = None
    failure_modes: list[FailureMode] = Field(default_factory=list)

    @model_validator(mode="after")
    def _latency_order(self) -> Runtime:
        if self.latency_p50_ms and self.latency_p99_ms and self.latency_p99_ms < self.latency_p50_ms:
            raise ValueError("latency_p99_ms must not be lower than latency_p50_ms")
        return self


class Dataset(_Strict):
    uri: NonEmpty
    digest: Digest | None = Field(default=None, description="Content digest of the dataset snapshot.")
    name: str | None = None
    split: str | None = Field(default=None, description="e.g. 'train', 'validation', 'test'.")


class Lineage(_Strict):
    datasets: list[Dataset] = Field(default_factory=list)
    training_run: str | None = Field(default=None, description="Experiment tracker run id or URL.")
    parent_model: str | None = Field(
        default=None, description="Reference of the model this one was derived from."
    )


class Governance(_Strict):
    owners: list[NonEmpty] = Field(default_factory=list, description="Accountable people or teams.")
    privacy: Literal["public", "internal", "confidential", "restricted"] | None = None
    retention: str | None = Field(
        default=None,
        pattern=r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?$",
        description="ISO 8601 duration to keep published versions, e.g. 'P365D'.",
    )


class HardwareTarget(_Strict):
    kind: Literal["cpu", "gpu", "tpu", "npu", "fpga", "other"]
    model: str | None = Field(default=None, description="e.g. 'nvidia-a10g', 'graviton3'.")
    arch: str | None = Field(default=None, description="e.g. 'amd64', 'arm64'.")
    min_memory: Quantity | None = None


def _bundle_path(path: str) -> str:
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"{path!r} must be a plain relative path inside the bundle (no '..', no leading '/')"
        )
    return path


BundlePath = Annotated[str, AfterValidator(_bundle_path)]
Bound = Annotated[float, Field(gt=0)]


class _ContractTest(_Strict):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64, description="Unique in the bundle."
    )
    description: str | None = None


class GoldenTest(_ContractTest):
    """Run the model on recorded inputs; outputs must match the recorded ones within tolerances."""

    kind: Literal["golden"]
    inputs: BundlePath = Field(description="JSON object or .npz of input name → array.")
    expected: BundlePath = Field(description="JSON object or .npz of output name → array.")
    rtol: Annotated[float, Field(ge=0)] = Field(default=1e-5, description="Relative tolerance.")
    atol: Annotated[float, Field(ge=0)] = Field(default=1e-6, description="Absolute tolerance.")


class SignatureTest(_ContractTest):
    """The declared ``inputs``/``outputs`` (names, dtypes, shapes) match the model's real signature."""

    kind: Literal["signature"]


class LatencyTest(_ContractTest):
    """p50/p99 latency over ``iterations`` runs after ``warmup`` runs, against bounds."""

    kind: Literal["latency"]
    batch_size: Annotated[int, Field(gt=0)] = 1
    iterations: Annotated[int, Field(gt=0, le=1_000_000)] = 100
    warmup: Annotated[int, Field(ge=0)] = 10
    p50_ms: Bound | None = Field(default=None, description="Bound; default runtime.latency_p50_ms.")
    p99_ms: Bound | None = Field(default=None, description="Bound; default runtime.latency_p99_ms.")


class CommandTest(_ContractTest):
    """Run a command from the bundle, in the bundle directory; exit status 0 passes. Runs bundle code."""

    kind: Literal["command"]
    run: list[NonEmpty] = Field(min_length=1, description="Program and arguments (no shell).")
    timeout_s: Bound = Field(default=600, description="Seconds before the command is stopped and fails.")


ContractTest = Annotated[GoldenTest | SignatureTest | LatencyTest | CommandTest, Field(discriminator="kind")]


def _relative_paths(values: list[str]) -> list[str]:
    for path in values:
        parts = path.split("/")
        if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
            raise ValueError(
                f"{path!r} must be a plain relative path inside the bundle (no '..', no leading '/')"
            )
    return values


RelativePaths = Annotated[list[str], AfterValidator(_relative_paths)]


class Pack(_Strict):
    """How files become layers: one raw layer per file, or directories of many small files as one tar layer."""

    tar: RelativePaths = Field(
        default_factory=list,
        description="Directories packed as one tar layer each, whatever their size or file count.",
    )
    raw: RelativePaths = Field(
        default_factory=list,
        description="Directories or files always packed one raw layer per file (never into a tar layer).",
    )
    min_files: Annotated[int, Field(gt=0)] = Field(
        default=100,
        description="A top-level directory holding at least this many small files packs them as one tar layer.",
    )
    small_file_size: Annotated[int, Field(ge=0)] = Field(
        default=1 << 20,
        description="Files up to this many bytes count as small; larger ones stay raw layers unless under a 'tar' directory.",
    )


class BundleManifest(_Strict):
    """The ``manifest.json`` at the root of a model bundle."""

    schema_: str | None = Field(default=None, alias="$schema", description="Optional schema URL for editors.")
    name: str = Field(pattern=_NAME, max_length=128, description="Model name; becomes the repository name.")
    version: str = Field(description="SemVer 2.0 version, e.g. '1.4.0' or '2.0.0-rc.1'.")
    description: str | None = None
    git_sha: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{7,64}$", description="Commit the model was built from."
    )
    git_dirty: bool | None = Field(default=None, description="Whether the work tree had uncommitted changes.")
    framework: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9_.+]*(-[0-9][0-9a-z_.+-]*)?$", description="e.g. 'onnx-1.15'."
    )
    python: str | None = Field(default=None, pattern=r"^3\.[0-9]+(\.[0-9]+)?$", description="e.g. '3.11'.")
    train_time: AwareDatetime | None = Field(default=None, description="RFC 3339 time with a UTC offset.")
    features: list[NonEmpty] = Field(default_factory=list, description="Feature names the model consumes.")
    intended_use: str | None = None
    notes: str | None = None
    metrics: dict[NonEmpty, Number] = Field(
        default_factory=dict, description="Evaluation metrics, name → number."
    )
    authors: list[NonEmpty] = Field(default_factory=list)
    license: Annotated[str, AfterValidator(_spdx)] | None = Field(
        default=None, description="SPDX expression."
    )
    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)
    dependencies: Dependencies | None = None
    runtime: Runtime | None = None
    lineage: Lineage | None = None
    governance: Governance | None = None
    hardware: list[HardwareTarget] = Field(default_factory=list)
    files: list[NonEmpty] = Field(
        default_factory=list,
        description="Files the bundle must contain (relative paths); validate checks them.",
    )
    tests: list[ContractTest] = Field(
        default_factory=list, description="Tests that travel with the model; 'mloci test' runs them."
    )
    pack: Pack | None = Field(
        default=None, description="How files are grouped into layers; see docs/format.md (Tar layers)."
    )
    extensions: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form data under your own keys; the only place unknown keys may go.",
    )

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not SEMVER.fullmatch(value):
            raise ValueError(f"{value!r} is not a SemVer 2.0 version (e.g. 1.4.0, 2.0.0-rc.1)")
        return value

    @field_validator("files")
    @classmethod
    def _relative(cls, values: list[str]) -> list[str]:
        for path in values:
            parts = path.split("/")
            if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
                raise ValueError(
                    f"{path!r} must be a plain relative path inside the bundle (no '..', no leading '/')"
                )
        return values

    @field_validator("tests")
    @classmethod
    def _unique_tests(cls, values: list[ContractTest]) -> list[ContractTest]:
        seen: set[str] = set()
        for test in values:
            if test.name in seen:
                raise ValueError(f"two tests are named {test.name!r}; names must be unique")
            seen.add(test.name)
        return values

    @property
    def framework_name(self) -> str | None:
        """'onnx' for 'onnx-1.15'."""
        return self.framework.split("-", 1)[0] if self.framework else None

    def to_document(self) -> dict[str, Any]:
        """The manifest as a JSON object, without unset fields (what mloci writes to manifest.json)."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
