"""Inspect: what an artifact holds — manifest, annotations, metrics, files — without downloading weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mloci.errors import IntegrityError
from mloci.store import Store, StoreOptions, open_store
from mloci.types import annotations as ann
from mloci.types import jsontext, mediatype
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest
from mloci.types.reference import Reference

# Small metadata blobs are read; anything larger is described, never downloaded.
_MAX_METADATA = 4 << 20


@dataclass(frozen=True)
class InspectResult:
    reference: Reference
    digest: Digest
    media_type: str
    manifest: dict[str, Any]
    config: dict[str, Any] | None
    bundle: dict[str, Any] | None
    files: list[dict[str, Any]]

    @property
    def annotations(self) -> dict[str, str]:
        value = self.manifest.get("annotations")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def metrics(self) -> dict[str, Any]:
        if self.bundle and isinstance(self.bundle.get("metrics"), dict):
            return dict(self.bundle["metrics"])
        raw = self.annotations.get(ann.METRICS)
        try:
            value = jsontext.loads(raw) if raw else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "mediaType": self.media_type,
            "artifactType": self.manifest.get("artifactType"),
            "size": sum(f["size"] for f in self.files),
            "annotations": self.annotations,
            "metrics": self.metrics,
            "files": self.files,
            "manifest": self.manifest,
            "config": self.config,
            "bundle": self.bundle,
        }


def _describe_layer(layer: Descriptor) -> dict[str, Any]:
    """A layer as a file entry; image layers (tars without a file path) are listed by kind only."""
    parsed = mediatype.parse_model_layer(layer.media_type)
    return {
        "path": layer.annotation(ann.MODEL_FILEPATH) or layer.annotation(ann.TITLE),
        "kind": parsed[0] if parsed else ("layer" if "image.layer" in layer.media_type else "file"),
        "mediaType": layer.media_type,
        "digest": str(layer.digest),
        "size": layer.size,
    }


def _small_json(store: Store, repository: str, descriptor: Descriptor) -> dict[str, Any] | None:
    if descriptor.size > _MAX_METADATA:
        return None
    with store.open_blob(repository, descriptor) as chunks:
        data = b"".join(chunks)
    try:
        value = jsontext.loads(data)
    except ValueError:
        raise IntegrityError(
            f"blob {descriptor.digest} ({descriptor.media_type}) is not valid JSON"
        ) from None
    return value if isinstance(value, dict) else None


def inspect(reference: Reference, *, options: StoreOptions | None = None) -> InspectResult:
    store = open_store(reference, options)
    try:
        descriptor, data = store.fetch_manifest(reference)
        raw = jsontext.loads(data)
        pinned = reference.pinned(descriptor.digest)
        if descriptor.media_type in mediatype.INDEX_TYPES:
            return InspectResult(pinned, descriptor.digest, descriptor.media_type, raw, None, None, [])
        manifest = Manifest.from_json(data)
        config = None
        if manifest.config.media_type.endswith("+json") or manifest.config.media_type.endswith("/json"):
            config = _small_json(store, reference.repository, manifest.config)
        bundle = None
        for layer in manifest.layers:
            if layer.annotation(ann.ROLE) == ann.ROLE_BUNDLE_MANIFEST:
                bundle = _small_json(store, reference.repository, layer)
                break
        files = [_describe_layer(layer) for layer in manifest.layers]
        return InspectResult(pinned, descriptor.digest, descriptor.media_type, raw, config, bundle, files)
    finally:
        store.close()
