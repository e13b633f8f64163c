"""Pure values with no I/O: digests, references, media types, descriptors and manifests."""

from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Index, Manifest, canonical_json
from mloci.types.reference import Reference

__all__ = ["Descriptor", "Digest", "Index", "Manifest", "Reference", "canonical_json"]
