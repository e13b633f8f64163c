"""What a pulled directory remembers of the artifact it came from, so it re-packs to the same digest.

When an artifact carries the user's own ``manifest.json`` bytes (see
:mod:`mloci.types.bundle_metadata`), the values push filled in — ``git_sha``/``git_dirty`` detected
from the work tree, the ``pack`` section merged with ``--pack`` — are only in the normalized
metadata, which ``pull`` keeps in ``.mloci/manifest.json``. While ``manifest.json`` is still the
file that pull wrote (its digest is one of the layers ``.mloci/pull.json`` records), loading the
directory takes those values from there. Once ``manifest.json`` is edited it is a new bundle, whose
git state is detected as for any other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mloci.bundle.manifest import BundleManifest
from mloci.types import jsontext
from mloci.types.bundle_metadata import PULL_MARKER, PULLED_METADATA

MAX_SIZE = 16 << 20


def _read(path: Path) -> bytes | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SIZE:
            return None
        return path.read_bytes()
    except OSError:
        return None


def restored(root: Path, manifest: BundleManifest, manifest_bytes: bytes) -> BundleManifest:
    """``manifest`` with the push-time values of the artifact ``root`` was pulled from, if unchanged since.

    Anything unreadable or inconsistent in ``.mloci/`` (mloci's own bookkeeping) is ignored: the
    bundle is then loaded as any other.
    """
    marker_data = _read(root / PULL_MARKER)
    stored_data = _read(root / PULLED_METADATA)
    if marker_data is None or stored_data is None:
        return manifest
    try:
        marker = jsontext.loads(marker_data)
        stored = BundleManifest.model_validate_json(stored_data)
    except (ValueError, ValidationError):
        return manifest
    layers = marker.get("layers") if isinstance(marker, dict) else None
    if not isinstance(layers, list) or f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}" not in layers:
        return manifest  # manifest.json changed since the pull (or came from elsewhere)
    update: dict[str, Any] = {"pack": stored.pack}
    if manifest.git_sha is None:
        update.update(git_sha=stored.git_sha, git_dirty=stored.git_dirty)
    return manifest.model_copy(update=update)
