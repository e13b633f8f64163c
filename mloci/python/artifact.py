"""One project version ("release") as one OCI image manifest, and back (format: ``docs/wheels.md``).

A release manifest has ``artifactType`` :data:`ARTIFACT_TYPE`, the empty config, and per
distribution file one raw layer (the file's exact bytes) followed, for wheels, by one layer holding
its core metadata. Files are sorted by name. A release only ever *gains* files: :func:`merge`
refuses a file name that is already published with other content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from mloci.bundle.git import GitState
from mloci.errors import ConflictError, RegistryError, UsageError
from mloci.python.distribution import Distribution
from mloci.python.filenames import DistKind, parse_filename, parse_version
from mloci.python.uploadtime import parse_time
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest

ARTIFACT_TYPE: Final = mediatype.PYTHON_PACKAGE
WHEEL_LAYER: Final = mediatype.PYTHON_WHEEL
SDIST_LAYER: Final = mediatype.PYTHON_SDIST
METADATA_LAYER: Final = mediatype.PYTHON_CORE_METADATA
LAYER_TYPES: Final = {DistKind.WHEEL: WHEEL_LAYER, DistKind.SDIST: SDIST_LAYER}

# Annotation keys (layers unless noted).
FILETYPE: Final = ann.PYTHON_FILETYPE
REQUIRES_PYTHON: Final = ann.PYTHON_REQUIRES_PYTHON
CORE_METADATA: Final = ann.PYTHON_CORE_METADATA
METADATA_FOR: Final = ann.PYTHON_METADATA_FOR
YANKED: Final = ann.PYTHON_YANKED

EMPTY_CONFIG: Final = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")


@dataclass(frozen=True)
class ReleaseFile:
    """One distribution file of a release, as the manifest records it."""

    filename: str
    kind: DistKind
    layer: Descriptor
    metadata: Descriptor | None = None  # the core-metadata layer (wheels)

    @property
    def requires_python(self) -> str | None:
        return self.layer.annotation(REQUIRES_PYTHON)

    @property
    def sha256(self) -> str | None:
        return self.layer.digest.encoded if self.layer.digest.algorithm == "sha256" else None

    @property
    def upload_time(self) -> str | None:
        """PEP 700 ``upload-time`` (RFC 3339 UTC) when the file's layer records one (docs/wheels.md)."""
        return parse_time(self.layer.annotation(ann.CREATED))


@dataclass(frozen=True)
class Release:
    """A project version: its files and whether it is yanked (``yanked`` is the reason, "" for none given)."""

    project: str  # display name, from the first file's metadata
    version: str  # normalized PEP 440
    files: tuple[ReleaseFile, ...]
    manifest: Manifest
    digest: Digest
    yanked: str | None = None
    extra_layers: tuple[Descriptor, ...] = field(default=())

    def file(self, filename: str) -> ReleaseFile | None:
        return next((f for f in self.files if f.filename == filename), None)

    @classmethod
    def from_manifest(cls, manifest: Manifest, digest: Digest) -> Release:
        """Read the release manifest ``digest``; RegistryError when it is some other artifact or malformed."""
        where = f"manifest {digest}"
        if manifest.artifact_type != ARTIFACT_TYPE:
            raise RegistryError(f"{where} is not a Python package release (artifactType {manifest.kind})")
        project = manifest.annotation(ann.TITLE)
        version = manifest.annotation(ann.VERSION)
        if not project or not version:
            raise RegistryError(f"{where} lacks the {ann.TITLE} or {ann.VERSION} annotation")
        metadata_layers = {
            layer.annotation(METADATA_FOR): layer
            for layer in manifest.layers
            if layer.media_type == METADATA_LAYER
        }
        files: list[ReleaseFile] = []
        extra: list[Descriptor] = []
        for layer in manifest.layers:
            if layer.media_type == METADATA_LAYER:
                continue
            filename = layer.annotation(ann.TITLE)
            if layer.media_type not in LAYER_TYPES.values() or not filename:
                extra.append(layer)
                continue
            try:
                kind = parse_filename(filename).kind
            except UsageError:
                raise RegistryError(f"{where} lists an invalid file name {filename!r}") from None
            metadata = metadata_layers.get(filename)
            if metadata is not None and str(metadata.digest) != layer.annotation(CORE_METADATA):
                metadata = None  # not the metadata this file points at: do not serve it as such
            files.append(ReleaseFile(filename, kind, layer, metadata))
        return cls(
            project=project,
            version=version,
            files=tuple(files),
            manifest=manifest,
            digest=digest,
            yanked=manifest.annotation(YANKED),
            extra_layers=tuple(extra),
        )


def _file_layers(
    dist: Distribution, git: GitState | None, created: str | None
) -> tuple[list[Descriptor], list[Blob]]:
    metadata_blob = Blob.of_bytes(METADATA_LAYER, dist.metadata.raw) if dist.kind is DistKind.WHEEL else None
    notes = {ann.TITLE: dist.filename, FILETYPE: dist.kind.value}
    if dist.metadata.requires_python:
        notes[REQUIRES_PYTHON] = dist.metadata.requires_python
    if metadata_blob is not None:
        notes[CORE_METADATA] = str(metadata_blob.descriptor.digest)
    if git is not None:
        notes[ann.REVISION] = git.sha
    if created is not None:
        notes[ann.CREATED] = created  # PEP 700 upload-time
    layer = Descriptor(
        media_type=LAYER_TYPES[dist.kind],
        digest=dist.digest,
        size=dist.size,
        annotations=dict(sorted(notes.items())),
    )
    blobs = [Blob(layer, opener=dist.opener)]
    layers = [layer]
    if metadata_blob is not None:
        meta_layer = metadata_blob.descriptor.model_copy(
            update={"annotations": {ann.TITLE: f"{dist.filename}.metadata", METADATA_FOR: dist.filename}}
        )
        layers.append(meta_layer)
        blobs.append(Blob(meta_layer, data=dist.metadata.raw))
    return layers, blobs


def _release_annotations(first: Distribution, git: GitState | None) -> dict[str, str]:
    notes = {ann.TITLE: first.metadata.name, ann.VERSION: first.version}
    if first.metadata.summary:
        notes[ann.DESCRIPTION] = first.metadata.summary
    if first.metadata.license_expression:
        notes[ann.LICENSES] = first.metadata.license_expression
    if git is not None:
        notes[ann.REVISION] = git.sha
        notes[ann.GIT_DIRTY] = "true" if git.dirty else "false"
    return notes


@dataclass(frozen=True)
class Plan:
    """What publishing some files into a release takes: the new manifest and the blobs it needs."""

    manifest: Manifest
    added: tuple[str, ...]  # file names new to the release
    present: tuple[str, ...]  # file names already published with the same content
    blobs: tuple[Blob, ...]

    @property
    def unchanged(self) -> bool:
        return not self.added


def merge(
    current: Release | None,
    dists: Sequence[Distribution],
    git: GitState | None = None,
    *,
    created: str | None = None,
) -> Plan:
    """The release with ``dists`` added (new files stamped ``created``, their PEP 700 upload time).
    ConflictError when a file name is published with other content."""
    if not dists:
        raise UsageError("no distribution files to publish")
    first = dists[0]
    version = parse_version(first.version)
    unique: dict[str, Distribution] = {}
    for dist in dists:
        if dist.project != first.project or parse_version(dist.version) != version:
            raise UsageError(f"{dist.filename} is not a file of {first.project} {first.version}")
        seen = unique.get(dist.filename)
        if seen is not None and seen.digest != dist.digest:
            raise UsageError(f"{dist.filename} was given twice with different content")
        unique[dist.filename] = dist
    if current is not None and parse_version(current.version) != version:
        raise RegistryError(f"the release for {first.version} is tagged with version {current.version}")
    groups: dict[str, list[Descriptor]] = {}
    present: list[str] = []
    if current is not None:
        for published in current.files:
            groups[published.filename] = [published.layer] + (
                [published.metadata] if published.metadata else []
            )
    blobs: list[Blob] = []
    added: list[str] = []
    for filename, dist in sorted(unique.items()):
        published_file = current.file(filename) if current is not None else None
        if published_file is not None:
            if published_file.layer.digest != dist.digest:
                raise ConflictError(
                    f"{filename} is already published in {first.project} {first.version} with other content "
                    f"({published_file.layer.digest}); published files are immutable",
                    hint="bump the version (or add a build tag to the wheel name)",
                )
            present.append(filename)
            continue
        layers, file_blobs = _file_layers(dist, git, created)
        groups[filename] = layers
        blobs.extend(file_blobs)
        added.append(filename)
    layers = [layer for name in sorted(groups) for layer in groups[name]]
    if current is not None:
        layers.extend(current.extra_layers)
        annotations = dict(current.manifest.annotations or {})
    else:
        annotations = _release_annotations(first, git)
    manifest = Manifest(
        artifact_type=ARTIFACT_TYPE,
        config=EMPTY_CONFIG.descriptor,
        layers=layers,
        annotations=annotations,
    )
    if added:
        blobs.append(EMPTY_CONFIG)
    return Plan(manifest, tuple(added), tuple(present), tuple(blobs))


def with_yank(release: Release, reason: str | None) -> Manifest:
    """The release manifest yanked with ``reason`` ("" for none), or un-yanked when ``reason`` is None."""
    annotations = {k: v for k, v in (release.manifest.annotations or {}).items() if k != YANKED}
    if reason is not None:
        annotations[YANKED] = reason
    return release.manifest.model_copy(update={"annotations": annotations})
