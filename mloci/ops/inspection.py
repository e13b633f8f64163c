"""Inspect: what an artifact holds — manifest, annotations, metrics, files — without downloading weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mloci.bundle.manifest import BundleManifest
from mloci.errors import IntegrityError
from mloci.store import Session, Store, read_small_blob, scoped
from mloci.store.base import MAX_METADATA_SIZE
from mloci.types import annotations as ann
from mloci.types import bundle_metadata, file_index, jsontext, mediatype
from mloci.types.digest import Digest
from mloci.types.json import JSONObject
from mloci.types.manifest import Descriptor, Index, Manifest
from mloci.types.reference import Reference


@dataclass(frozen=True)
class ArtifactFile:
    """One layer of an artifact as a file: its path (None for image layers), ModelPack kind, digest and size."""

    path: str | None
    kind: str
    media_type: str
    digest: Digest
    size: int
    layer: Digest | None = None  # the tar layer holding this file (tar-packed directories), else None

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.layer is not None:
            value["layer"] = str(self.layer)
        return value


@dataclass(frozen=True)
class Artifact:
    """An artifact as a store holds it, read without its large blobs.

    ``manifest`` is the image manifest (None for an index, then ``index`` is set); ``bundle`` is
    mloci's bundle manifest when the artifact is a model bundle (None with ``bundle_problem`` set
    when one is present but does not validate here); ``config`` is the config blob's
    JSON document when it is small JSON (free-form: ModelPack, image or any tool's config).
    """

    reference: Reference
    digest: Digest
    media_type: str
    manifest: Manifest | None
    index: Index | None
    config: JSONObject | None
    bundle: BundleManifest | None
    files: tuple[ArtifactFile, ...]
    manifest_bytes: bytes
    bundle_problem: str | None = None  # why a bundle manifest layer did not validate (bundle is then None)

    @property
    def artifact_type(self) -> str | None:
        if self.manifest is not None:
            return self.manifest.artifact_type
        return self.index.artifact_type if self.index is not None else None

    @property
    def annotations(self) -> dict[str, str]:
        owner = self.manifest or self.index
        return dict(owner.annotations or {}) if owner is not None else {}

    @property
    def metrics(self) -> dict[str, float]:
        if self.bundle is not None:
            return {k: float(v) for k, v in self.bundle.metrics.items()}
        raw = self.annotations.get(ann.METRICS)
        try:
            value = jsontext.loads(raw) if raw else {}
        except ValueError:
            return {}
        if not isinstance(value, dict):
            return {}
        return {
            str(k): float(v)
            for k, v in value.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "size": self.size,
            "annotations": self.annotations,
            "metrics": self.metrics,
            "files": [f.to_json() for f in self.files],
            "manifest": jsontext.loads(self.manifest_bytes),
            "config": self.config,
            "bundle": self.bundle.to_document() if self.bundle is not None else None,
        }


def describe_layer(layer: Descriptor) -> ArtifactFile:
    """A layer as a file entry; image layers (tars without a file path) are listed by kind only."""
    parsed = mediatype.parse_model_layer(layer.media_type)
    return ArtifactFile(
        path=layer.annotation(ann.MODEL_FILEPATH) or layer.annotation(ann.TITLE),
        kind=parsed[0] if parsed else ("layer" if "image.layer" in layer.media_type else "file"),
        media_type=layer.media_type,
        digest=layer.digest,
        size=layer.size,
    )


def _files(store: Store, repository: str, manifest: Manifest) -> tuple[ArtifactFile, ...]:
    """One entry per file: tar layers with a file index are listed as the files they hold."""
    index_descriptor = file_index.index_layer(manifest)
    index: file_index.FileIndex = {}
    if index_descriptor is not None:
        index = file_index.parse_index(
            read_small_blob(store, repository, index_descriptor, limit=file_index.MAX_INDEX_SIZE)
        )
    files: list[ArtifactFile] = []
    for layer in manifest.layers:
        if layer is index_descriptor or bundle_metadata.is_metadata_layer(layer):
            continue  # about the files, not a file (pull does not write it)
        entry = describe_layer(layer)
        packed = index.get(layer.digest)
        if packed is None:
            files.append(entry)
            continue
        files.extend(
            dataclasses.replace(
                entry, path=f.path, digest=Digest.parse(f.digest), size=f.size, layer=layer.digest
            )
            for f in packed
        )
    return tuple(files)


def _small_json(store: Store, repository: str, descriptor: Descriptor) -> JSONObject | None:
    if descriptor.size > MAX_METADATA_SIZE:
        return None  # described, never downloaded
    data = read_small_blob(store, repository, descriptor)
    try:
        value = jsontext.loads(data)
    except ValueError:
        raise IntegrityError(
            f"blob {descriptor.digest} ({descriptor.media_type}) is not valid JSON"
        ) from None
    return value if isinstance(value, dict) else None


def _bundle(store: Store, ref: Reference, layer: Descriptor) -> tuple[BundleManifest | None, str | None]:
    """The bundle manifest, or why it could not be read (another mloci version or tool wrote it)."""
    data = read_small_blob(store, ref.repository, layer)
    try:
        return BundleManifest.model_validate_json(data), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"{where}: {first['msg']}"


def read_artifact(store: Store, reference: Reference) -> Artifact:
    """:func:`inspect` over an already-open store."""
    descriptor, data = store.fetch_manifest(reference)
    pinned = reference.pinned(descriptor.digest)
    if descriptor.media_type in mediatype.INDEX_TYPES:
        index = Index.from_json(data)
        return Artifact(pinned, descriptor.digest, descriptor.media_type, None, index, None, None, (), data)
    manifest = Manifest.from_json(data)
    config = None
    if manifest.config.media_type.endswith(("+json", "/json")):
        config = _small_json(store, reference.repository, manifest.config)
    bundle, problem = None, None
    for layer in manifest.layers:
        if layer.annotation(ann.ROLE) == ann.ROLE_BUNDLE_MANIFEST:
            bundle, problem = _bundle(store, pinned, layer)
            break
    files = _files(store, reference.repository, manifest)
    return Artifact(
        pinned, descriptor.digest, descriptor.media_type, manifest, None, config, bundle, files, data, problem
    )


def inspect(reference: Reference, *, session: Session | None = None) -> Artifact:
    """The artifact ``reference`` names: manifest, config, bundle manifest and files, no weights downloaded."""
    with scoped(session) as active:
        return read_artifact(active.store(reference), reference)
