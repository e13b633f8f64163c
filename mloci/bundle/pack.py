"""Packing a bundle into a ModelPack-compatible OCI artifact, deterministically.

Nothing in the output depends on the clock, file mtimes, owners or dict order: the
same bundle content gives the same manifest digest on any machine. ``docs/format.md``
describes the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mloci.bundle import tarpack
from mloci.bundle.files import layer_kind
from mloci.bundle.git import GitState
from mloci.bundle.load import Bundle
from mloci.bundle.locks import lock_kind
from mloci.bundle.manifest import MANIFEST_FILENAME, BundleManifest
from mloci.errors import UsageError
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.bundle_metadata import METADATA_PATH
from mloci.types.digest import Digest, hash_file
from mloci.types.manifest import Descriptor, Manifest, canonical_json
from mloci.types.timestamps import rfc3339

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PackedArtifact:
    """An artifact ready to push: the manifest's exact bytes and every blob it references."""

    manifest: Manifest
    manifest_bytes: bytes
    config: Blob
    layers: tuple[Blob, ...]
    bundle_manifest: BundleManifest

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest_bytes)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    @property
    def tags(self) -> tuple[str, ...]:
        """``<version>`` and ``<version>-<git_sha[:7]>`` ('+' becomes '_', as tags cannot hold it)."""
        version = version_tag(self.bundle_manifest.version)
        sha = self.bundle_manifest.git_sha
        return (version, f"{version}-{sha[:7]}") if sha else (version,)


def version_tag(version: str) -> str:
    return version.replace("+", "_")


def source_date(manifest: BundleManifest) -> datetime:
    """The artifact's creation time, from content only: SOURCE_DATE_EPOCH, else train_time, else 1970."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), tz=UTC)
        except ValueError:
            raise UsageError(f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds") from None
    return manifest.train_time or EPOCH


def with_git(bundle: Bundle, state: GitState | None) -> Bundle:
    """The bundle with git_sha/git_dirty filled from ``state`` where the manifest left them unset."""
    if state is None or bundle.manifest.git_sha is not None:
        return bundle
    manifest = bundle.manifest.model_copy(update={"git_sha": state.sha, "git_dirty": state.dirty})
    return Bundle(
        root=bundle.root, manifest=manifest, files=bundle.files, manifest_bytes=bundle.manifest_bytes
    )


def manifest_document(manifest: BundleManifest) -> bytes:
    """manifest.json as packed: sorted keys, 2-space indent, so pulled bundles read well and re-pack identically."""
    text = json.dumps(manifest.to_document(), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode()


def _config(manifest: BundleManifest, created: str, diff_ids: list[str]) -> dict[str, Any]:
    descriptor: dict[str, Any] = {"name": manifest.name, "version": manifest.version, "createdAt": created}
    if manifest.git_sha:
        descriptor["revision"] = manifest.git_sha
    if manifest.license:
        descriptor["licenses"] = [manifest.license]
    if manifest.authors:
        descriptor["authors"] = list(manifest.authors)
    if manifest.description:
        descriptor["description"] = manifest.description
    model_config: dict[str, Any] = {}
    if manifest.framework_name:
        model_config["format"] = manifest.framework_name
    return {
        "descriptor": descriptor,
        "config": model_config,
        "modelfs": {"type": "layers", "diffIds": diff_ids},
    }


def _manifest_annotations(manifest: BundleManifest, created: str) -> dict[str, str]:
    values = {
        ann.TITLE: manifest.name,
        ann.NAME: manifest.name,
        ann.VERSION: manifest.version,
        ann.CREATED: created,
        ann.REVISION: manifest.git_sha,
        ann.DESCRIPTION: manifest.description,
        ann.LICENSES: manifest.license,
        ann.AUTHORS: ", ".join(manifest.authors) or None,
        ann.FRAMEWORK: manifest.framework,
        ann.METRICS: canonical_json(manifest.metrics).decode() if manifest.metrics else None,
        ann.GIT_DIRTY: None if manifest.git_dirty is None else str(manifest.git_dirty).lower(),
    }
    return {key: value for key, value in values.items() if value is not None}


def _manifest_layers(manifest: BundleManifest, original: bytes | None) -> list[Blob]:
    """The layer(s) of ``manifest.json``: see :mod:`mloci.types.bundle_metadata`.

    When the file on disk already is the normalized document (or is unknown), that one layer
    carries it, marked as the bundle manifest, as it always has. Otherwise the user's bytes travel
    unchanged (a model signature over them still holds after a pull), and the normalized metadata
    (metrics merged, git fields filled in) gets its own hidden layer.
    """
    data = manifest_document(manifest)
    doc = mediatype.model_layer("doc")
    marked = {ann.ROLE: ann.ROLE_BUNDLE_MANIFEST}
    if original is None or original == data:
        paths = {ann.MODEL_FILEPATH: MANIFEST_FILENAME, ann.TITLE: MANIFEST_FILENAME}
        return [Blob(Descriptor.of_bytes(doc, data, annotations={**paths, **marked}), data=data)]
    files = {ann.MODEL_FILEPATH: MANIFEST_FILENAME, ann.TITLE: MANIFEST_FILENAME}
    metadata = {ann.MODEL_FILEPATH: METADATA_PATH, ann.TITLE: METADATA_PATH, **marked}
    return [
        Blob(Descriptor.of_bytes(doc, original, annotations=files), data=original),
        Blob(Descriptor.of_bytes(doc, data, annotations=metadata), data=data),
    ]


def pack(
    bundle: Bundle,
    *,
    digests: Mapping[str, tuple[Digest, int]] | None = None,
    spool: Path | None = None,
    tar_cache: tarpack.TarCache | None = None,
) -> PackedArtifact:
    """Build the artifact's config and manifest.

    ``digests`` maps bundle paths to (digest, size) already computed by the caller (who may
    have cached them, or copied or uploaded each file while hashing it); files missing from
    it are hashed here. Tar layers are written into ``spool`` (a directory the caller removes)
    when given, else re-generated from the files whenever they are read.
    """
    digests = digests or {}
    manifest = bundle.manifest
    created = rfc3339(source_date(manifest))
    layers: list[Blob] = []
    # Directories of many small files become tar layers plus a file index (mloci.bundle.tarpack).
    packing = tarpack.plan(bundle.files, manifest.pack)
    if packing.groups:
        tar_layers = [tarpack.build(group, spool, cache=tar_cache) for group in packing.groups]
        layers += [layer.blob for layer in tar_layers]
        layers.append(tarpack.index_blob(tar_layers))
    for entry in packing.raw:
        layer_annotations = {ann.MODEL_FILEPATH: entry.path, ann.TITLE: entry.path}
        if entry.path == MANIFEST_FILENAME:
            layers += _manifest_layers(manifest, bundle.manifest_bytes)
            continue
        lock = lock_kind(bundle.root, entry.path)
        if lock is not None:  # which file pins the full environment (mloci check reads it)
            layer_annotations.update({ann.ROLE: ann.ROLE_LOCK_FILE, ann.LOCK_FORMAT: lock})
        digest, size = digests.get(entry.path) or hash_file(entry.source)
        descriptor = Descriptor(
            media_type=mediatype.model_layer(layer_kind(entry.path)),
            digest=digest,
            size=size,
            annotations=layer_annotations,
        )
        layers.append(Blob(descriptor, path=entry.source))

    if packing.groups or len(layers) != len(packing.raw):  # tar layers, index or metadata layer added
        layers.sort(key=lambda b: (b.descriptor.annotation(ann.MODEL_FILEPATH) or "").encode())
    # Raw and tar layers are uncompressed, so each diffId is the layer digest itself.
    config_data = canonical_json(_config(manifest, created, [str(b.descriptor.digest) for b in layers]))
    config = Blob.of_bytes(mediatype.MODEL_CONFIG, config_data)
    oci_manifest = Manifest(
        media_type=mediatype.OCI_MANIFEST,
        artifact_type=mediatype.MODEL_ARTIFACT,
        config=config.descriptor,
        layers=[b.descriptor for b in layers],
        annotations=_manifest_annotations(manifest, created),
    )
    return PackedArtifact(
        manifest=oci_manifest,
        manifest_bytes=oci_manifest.to_json(),
        config=config,
        layers=tuple(layers),
        bundle_manifest=manifest,
    )
