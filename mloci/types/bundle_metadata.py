"""Where an artifact keeps mloci's bundle metadata (the normalized manifest), read side.

``docs/format.md`` (The bundle manifest layer) documents both layouts:

- the bundle's ``manifest.json`` already is the normalized document (sorted keys, 2-space indent,
  nothing merged or filled in): one layer at ``manifest.json`` with ``dev.mloci.role:
  bundle-manifest`` — the only layout mloci wrote before, still read and still written then;
- otherwise ``manifest.json`` carries the user's bytes unchanged (an ordinary doc layer, so a
  model signature over the directory still holds after a pull) and the normalized document
  travels in its own layer at ``.mloci-manifest.json`` with ``dev.mloci.role: bundle-manifest``.
  ``pull`` keeps it in the marker directory (``.mloci/manifest.json``), never among the files.

Readers find the metadata by the role either way (:func:`bundle_layer`).
"""

from __future__ import annotations

from typing import Final

from mloci.types import annotations as ann
from mloci.types.manifest import Descriptor, Manifest

METADATA_PATH: Final = ".mloci-manifest.json"
"""``org.cncf.model.filepath`` of the separate metadata layer (hidden: push never packs such a file)."""
PULLED_METADATA: Final = ".mloci/manifest.json"
"""Where ``pull`` writes the separate metadata layer, inside its marker directory."""
PULL_MARKER: Final = ".mloci/pull.json"


def bundle_layer(manifest: Manifest) -> Descriptor | None:
    """The layer holding the normalized bundle manifest, in either layout; None for other artifacts."""
    return next((d for d in manifest.layers if d.annotation(ann.ROLE) == ann.ROLE_BUNDLE_MANIFEST), None)


def is_metadata_layer(descriptor: Descriptor) -> bool:
    """True for the separate metadata layer: mloci's data about the files, not a file to unpack."""
    return (
        descriptor.annotation(ann.ROLE) == ann.ROLE_BUNDLE_MANIFEST
        and descriptor.annotation(ann.MODEL_FILEPATH) == METADATA_PATH
    )


def metadata_layer(manifest: Manifest) -> Descriptor | None:
    return next((d for d in manifest.layers if is_metadata_layer(d)), None)
