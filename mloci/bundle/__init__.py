"""The ML bundle: its manifest model, validation, and packing a directory into an artifact."""

from mloci.bundle.load import Bundle, inspect_bundle, load_bundle
from mloci.bundle.manifest import BundleManifest
from mloci.bundle.pack import PackedArtifact, pack

__all__ = ["Bundle", "BundleManifest", "PackedArtifact", "inspect_bundle", "load_bundle", "pack"]
