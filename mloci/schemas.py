"""JSON Schemas generated from the pydantic models; ``python -m mloci.schemas`` rewrites ``schemas/``.

The models are the source of truth; a test regenerates the schemas and fails when the
committed files differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mloci.bundle.manifest import BundleManifest
from mloci.project import ProjectConfig
from mloci.types.policy import Policy
from mloci.types.promotion import PromotionRecord

SCHEMA_BASE = "https://mloci.dev/schemas/"
MODELS: dict[str, type[BaseModel]] = {
    "bundle-manifest.schema.json": BundleManifest,
    "policy.schema.json": Policy,
    "project-config.schema.json": ProjectConfig,
    "promotion-record.schema.json": PromotionRecord,
}


def generate() -> dict[str, dict[str, Any]]:
    schemas = {}
    for filename, model in MODELS.items():
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schemas[filename] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_BASE + filename,
            **schema,
        }
    return schemas


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, schema in generate().items():
        path = directory / filename
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "schemas"
    for path in write(target):
        print(path)
