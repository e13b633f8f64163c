"""Project configuration: the ordered environments a model is promoted through.

Read from ``mloci.toml`` (top level) or ``pyproject.toml`` (``[tool.mloci]``), found by walking
up from the working directory like other Python tools do::

    [[environments]]
    name = "dev"
    repository = "registry.example.com/ml-dev/churn-model"

    [[environments]]
    name = "prod"
    repository = "prod-registry.example.com/ml/churn-model"
    policy = "policy.yaml"      # gate applied to every promotion into prod

The pydantic model is the source of ``schemas/project-config.schema.json``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mloci.errors import UsageError
from mloci.types.reference import Reference, is_valid_tag


class Environment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="e.g. dev, staging, prod")
    repository: str = Field(
        description="Where this environment's artifacts live: registry/repository, no tag."
    )
    alias: str | None = Field(default=None, description="The moving tag; defaults to the environment name.")
    policy: str | None = Field(
        default=None, description="Policy file every promotion into this environment must pass."
    )

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        ref = Reference.parse(value)
        if ref.tag or ref.digest:
            raise ValueError("name a repository without tag or digest")
        return value

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_tag(value):
            raise ValueError(f"{value!r} is not a valid tag")
        return value

    @property
    def tag(self) -> str:
        return self.alias or self.name

    @property
    def reference(self) -> Reference:
        return Reference.parse(self.repository)


class ProjectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    environments: list[Environment] = Field(default_factory=list, description="In promotion order.")

    @field_validator("environments")
    @classmethod
    def _unique(cls, values: list[Environment]) -> list[Environment]:
        names = [e.name for e in values]
        if len(names) != len(set(names)):
            raise ValueError("environment names must be unique")
        return values

    def environment(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name == name), None)

    def next_after(self, name: str) -> Environment | None:
        names = [e.name for e in self.environments]
        index = names.index(name) if name in names else -1
        return self.environments[index + 1] if 0 <= index < len(names) - 1 else None


def _read(path: Path, section: tuple[str, ...]) -> ProjectConfig | None:
    try:
        document: object = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    for key in section:
        document = document.get(key) if isinstance(document, dict) else None
    if document is None:
        return None
    try:
        return ProjectConfig.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{path}: {where}: {first['msg'].removeprefix('Value error, ')}") from None


def load_project(start: Path | None = None) -> ProjectConfig | None:
    """The nearest project configuration at or above ``start`` (default: the working directory)."""
    found = find_project(start)
    return found[1] if found else None


def find_project(start: Path | None = None) -> tuple[Path, ProjectConfig] | None:
    """The nearest project configuration at or above ``start`` and the file it was read from."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "mloci.toml").is_file():
            return directory / "mloci.toml", _read(directory / "mloci.toml", ()) or ProjectConfig()
        if (directory / "pyproject.toml").is_file():
            found = _read(directory / "pyproject.toml", ("tool", "mloci"))
            if found is not None:
                return directory / "pyproject.toml", found
    return None


def load_project_file(path: Path) -> ProjectConfig:
    """The project configuration in ``path``: a ``mloci.toml``, or a ``pyproject.toml`` (``[tool.mloci]``)."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file", hint="name a mloci.toml or a pyproject.toml")
    section = ("tool", "mloci") if path.name == "pyproject.toml" else ()
    found = _read(path, section)
    if found is None:
        raise UsageError(f"{path} has no [tool.mloci] table")
    return found
