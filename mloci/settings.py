"""Where mloci keeps things and what the environment configures."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """``$MLOCI_HOME``, else ``$XDG_DATA_HOME/mloci``, else ``~/.local/share/mloci``. Everything local lives here."""
    explicit = os.environ.get("MLOCI_HOME")
    if explicit:
        return Path(explicit).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "mloci"


def default_registry() -> str | None:
    """``$MLOCI_REGISTRY`` (``host[:port][/namespace]``): where short names go; unset means the local store."""
    value = os.environ.get("MLOCI_REGISTRY", "").strip().strip("/")
    if not value:
        return None
    from mloci.types.reference import check_default_registry  # noqa: PLC0415  (settings imports nothing eagerly)

    return check_default_registry(value, f"$MLOCI_REGISTRY ({value!r})")
