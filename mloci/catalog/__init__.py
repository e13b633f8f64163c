"""The model catalog: typed reads of a registry namespace (or the local store) for the web UI and REST API."""

from mloci.catalog.models import (
    Comparison,
    ModelDetail,
    ModelPage,
    ModelSummary,
    Package,
    Promotion,
    VersionDetail,
    VersionSummary,
)
from mloci.catalog.query import Query
from mloci.catalog.service import Catalog, CatalogConfig

__all__ = [
    "Catalog",
    "CatalogConfig",
    "Comparison",
    "ModelDetail",
    "ModelPage",
    "ModelSummary",
    "Package",
    "Promotion",
    "Query",
    "VersionDetail",
    "VersionSummary",
]
