"""mloci: OCI-native packaging for machine-learning artifacts.

The Python API (see docs/python-api.md)::

    import mloci

    res = mloci.push("model_bundle/", "registry.example.com/ml/churn-model")
    art = mloci.inspect(res.reference)
    mloci.pull(res.reference, "/models/churn")
    mloci.promote(res.reference, to="prod", reason="passed canary")

The top-level functions share one default :class:`Client`; create your own to choose TLS and
concurrency options or to close connections. Everything is imported on first use, so
``import mloci`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_FUNCTIONS = (
    "attach", "attest", "build_image", "check_environment", "check_policy", "copy", "diff", "discover", "doctor",
    "export", "gc", "history", "import_archive", "init", "inspect", "keygen", "login", "logout", "promote", "pull",
    "pull_wheel", "push", "push_wheels", "reserve_projects", "rollback", "run_tests", "sbom", "sign", "tag",
    "validate", "verify", "verify_attestation",
    "versions", "yank",
)  # fmt: skip
_NAMES: dict[str, str] = {
    **dict.fromkeys(_FUNCTIONS, "mloci._api"),
    "Client": "mloci.client",
    "default_client": "mloci.client",
    "Reference": "mloci.types.reference",
    "Digest": "mloci.types.digest",
    "Descriptor": "mloci.types.manifest",
    "Manifest": "mloci.types.manifest",
    "Index": "mloci.types.manifest",
    "BundleManifest": "mloci.bundle.manifest",
    "ProjectConfig": "mloci.project",
    "PromotionRecord": "mloci.types.promotion",
    "Artifact": "mloci.ops.inspection",
    "ArtifactFile": "mloci.ops.inspection",
    "PushResult": "mloci.ops.push",
    "PullResult": "mloci.ops.pull",
    "ModelVersion": "mloci.ops.listing",
    "Diff": "mloci.ops.diff",
    "CopyResult": "mloci.ops.transfer",
    "ExportResult": "mloci.ops.archive",
    "ImportResult": "mloci.ops.archive",
    "TagResult": "mloci.ops.tag",
    "PromotionResult": "mloci.ops.promote",
    "History": "mloci.ops.promote",
    "HistoryEntry": "mloci.ops.promote",
    "SignResult": "mloci.ops.sign",
    "VerifyResult": "mloci.ops.sign",
    "ValidationReport": "mloci.ops.validate",
    "TransferListener": "mloci.ops.progress",
    "MlociError": "mloci.errors",
    "UsageError": "mloci.errors",
    "BundleInvalidError": "mloci.errors",
    "NotFoundError": "mloci.errors",
    "AuthError": "mloci.errors",
    "IntegrityError": "mloci.errors",
    "ConflictError": "mloci.errors",
    "UnavailableError": "mloci.errors",
    "RegistryError": "mloci.errors",
    "UnsupportedError": "mloci.errors",
    "PolicyError": "mloci.errors",
    "ContractError": "mloci.errors",
    "ContractReport": "mloci.contract.run",
    "CheckReport": "mloci.contract.environment",
}

__all__ = [
    "Artifact",
    "ArtifactFile",
    "AuthError",
    "BundleInvalidError",
    "BundleManifest",
    "CheckReport",
    "Client",
    "ConflictError",
    "ContractError",
    "ContractReport",
    "CopyResult",
    "Descriptor",
    "Diff",
    "Digest",
    "ExportResult",
    "History",
    "HistoryEntry",
    "ImportResult",
    "Index",
    "IntegrityError",
    "Manifest",
    "MlociError",
    "ModelVersion",
    "NotFoundError",
    "PolicyError",
    "ProjectConfig",
    "PromotionRecord",
    "PromotionResult",
    "PullResult",
    "PushResult",
    "Reference",
    "RegistryError",
    "SignResult",
    "TagResult",
    "TransferListener",
    "UnavailableError",
    "UnsupportedError",
    "UsageError",
    "ValidationReport",
    "VerifyResult",
    "__version__",
    "attach",
    "attest",
    "build_image",
    "check_environment",
    "check_policy",
    "copy",
    "default_client",
    "diff",
    "discover",
    "doctor",
    "export",
    "gc",
    "history",
    "import_archive",
    "init",
    "inspect",
    "keygen",
    "login",
    "logout",
    "promote",
    "pull",
    "pull_wheel",
    "push",
    "push_wheels",
    "reserve_projects",
    "rollback",
    "run_tests",
    "sbom",
    "sign",
    "tag",
    "validate",
    "verify",
    "verify_attestation",
    "versions",
    "yank",
]


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'mloci' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from mloci._api import (
        attach,
        attest,
        build_image,
        check_policy,
        copy,
        diff,
        discover,
        doctor,
        gc,
        history,
        init,
        inspect,
        keygen,
        login,
        logout,
        promote,
        pull,
        pull_wheel,
        push,
        push_wheels,
        reserve_projects,
        rollback,
        sbom,
        sign,
        tag,
        validate,
        verify,
        verify_attestation,
        versions,
        yank,
    )
    from mloci.bundle.manifest import BundleManifest
    from mloci.client import Client, default_client
    from mloci.errors import (
        AuthError,
        BundleInvalidError,
        ConflictError,
        IntegrityError,
        MlociError,
        NotFoundError,
        PolicyError,
        RegistryError,
        UnavailableError,
        UnsupportedError,
        UsageError,
    )
    from mloci.ops.diff import Diff
    from mloci.ops.inspection import Artifact, ArtifactFile
    from mloci.ops.listing import ModelVersion
    from mloci.ops.progress import TransferListener
    from mloci.ops.promote import History, HistoryEntry, PromotionResult
    from mloci.ops.pull import PullResult
    from mloci.ops.push import PushResult
    from mloci.ops.sign import SignResult, VerifyResult
    from mloci.ops.tag import TagResult
    from mloci.ops.transfer import CopyResult
    from mloci.ops.validate import ValidationReport
    from mloci.project import ProjectConfig
    from mloci.types.digest import Digest
    from mloci.types.manifest import Descriptor, Index, Manifest
    from mloci.types.promotion import PromotionRecord
    from mloci.types.reference import Reference
