"""Daemonless inference images: a base image plus a model layer (and an app layer), like crane append.

The base may be one manifest or a multi-platform index (the layers are appended to every
platform). Labels and annotations tie the image to its model and base, both ways:
``org.opencontainers.image.{version,revision,source,base.name,base.digest}`` and
``dev.mloci.model.digest``. Same inputs give the same image digest.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mloci import settings
from mloci.bundle.git import git_state
from mloci.bundle.load import load_bundle
from mloci.bundle.pack import pack, source_date, version_tag, with_git
from mloci.errors import IntegrityError, MlociError, UsageError
from mloci.image.layer import Entry, ImageLayer, build_layer, iter_entries
from mloci.ops.pull import pull
from mloci.ops.refs import parse_reference
from mloci.ops.transfer import Copier
from mloci.store import Session, Store, read_small_blob, scoped
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.bundle_metadata import PULLED_METADATA
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Index, Manifest, canonical_json
from mloci.types.reference import Reference
from mloci.types.text import escape_controls
from mloci.types.timestamps import rfc3339


@dataclass(frozen=True)
class ImageSpec:
    """What to put on top of the base image."""

    base: Reference
    repository: Reference
    cmd: Sequence[str] | None = None
    entrypoint: Sequence[str] | None = None
    app: Path | None = None
    app_path: str = "/app"
    model_root: str = "/models"
    env: Mapping[str, str] = field(default_factory=dict)
    ports: Sequence[str] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    source_url: str | None = None


@dataclass(frozen=True)
class ImageResult:
    reference: Reference
    digest: Digest
    model_digest: Digest
    platforms: tuple[str, ...]
    tags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "model": str(self.model_digest),
            "platforms": list(self.platforms),
            "tags": list(self.tags),
        }


@dataclass(frozen=True)
class _ImageModel:
    name: str
    version: str
    revision: str | None
    digest: Digest
    files: Path  # directory holding the model's files
    created: datetime


def _model_from_bundle(path: Path) -> _ImageModel:
    bundle = with_git(load_bundle(path), git_state(path))
    packed = pack(bundle)
    m = bundle.manifest
    return _ImageModel(m.name, m.version, m.git_sha, packed.digest, bundle.root, source_date(m))


def _model_from_reference(ref: Reference, workdir: Path, session: Session) -> _ImageModel:
    result = pull(ref, workdir / "model", session=session)
    # The normalized manifest, where pull keeps it apart from the user's manifest.json (docs/format.md).
    document = _pulled_manifest(result.output)
    name = str(document.get("name") or ref.repository.rsplit("/", 1)[-1])
    version = str(document.get("version") or ref.tag or "0.0.0")
    created = datetime(1970, 1, 1, tzinfo=UTC)
    if train_time := str(document.get("train_time") or ""):
        try:
            created = datetime.fromisoformat(train_time.replace("Z", "+00:00"))
        except ValueError:
            raise IntegrityError(
                f"{ref}: the bundle manifest's train_time {escape_controls(train_time)!r} "
                "is not an ISO 8601 time; fix it in the bundle and push it again"
            ) from None
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
    git_sha = document.get("git_sha")
    return _ImageModel(
        name, version, git_sha if isinstance(git_sha, str) else None, result.digest, result.output, created
    )


def _pulled_manifest(directory: Path) -> dict[str, Any]:
    """The bundle manifest of a pulled model, or {} for a model another tool pushed.

    The normalized manifest is where pull keeps it apart from the user's manifest.json
    (docs/format.md); earlier artifacts carry it as manifest.json itself. An artifact may hold
    anything, so the shape is checked: mloci's own copy must be a JSON object, while a
    manifest.json of another tool's making is simply not ours.
    """
    kept = directory / PULLED_METADATA
    path = kept if kept.is_file() else directory / "manifest.json"
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        value = None
    if isinstance(value, dict):
        return value
    if path == kept:
        raise IntegrityError(
            f"the model's bundle manifest ({PULLED_METADATA}) is not a JSON object; "
            "the artifact is damaged: push the bundle again"
        )
    return {}


def _platform_manifests(
    store: Store, base: Reference
) -> tuple[Descriptor, list[tuple[Descriptor, Manifest]]]:
    descriptor, data = store.fetch_manifest(base)
    if descriptor.media_type in mediatype.INDEX_TYPES:
        index = Index.from_json(data)
        found = []
        for child in index.manifests:
            if child.platform is not None and child.platform.os == "unknown":
                continue  # attestation manifests in buildx indexes
            _, child_data = store.fetch_manifest(base.with_tag(None).with_digest(child.digest))
            found.append((child, Manifest.from_json(child_data)))
        return descriptor, found
    return descriptor, [(descriptor, Manifest.from_json(data))]


def _read_json(store: Store, repository: str, descriptor: Descriptor) -> dict[str, Any]:
    try:
        value = json.loads(read_small_blob(store, repository, descriptor))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise MlociError(f"image config {descriptor.digest} is not a JSON object")
    return value


def _new_config(
    config: dict[str, Any],
    spec: ImageSpec,
    model: _ImageModel,
    model_path: str,
    layers: list[ImageLayer],
    labels: dict[str, str],
) -> dict[str, Any]:
    created = rfc3339(model.created)
    runtime = dict(config.get("config") or {})
    env = [
        e
        for e in runtime.get("Env") or []
        if not e.startswith(("MODEL_PATH=", "MODEL_NAME=", "MODEL_DIGEST="))
    ]
    env += [f"MODEL_PATH={model_path}", f"MODEL_NAME={model.name}", f"MODEL_DIGEST={model.digest}"]
    env += [f"{k}={v}" for k, v in sorted(spec.env.items())]
    runtime["Env"] = env
    if spec.cmd is not None:
        runtime["Cmd"] = list(spec.cmd)
    if spec.entrypoint is not None:
        runtime["Entrypoint"] = list(spec.entrypoint)
    if spec.ports:
        runtime["ExposedPorts"] = {
            **(runtime.get("ExposedPorts") or {}),
            **{p if "/" in p else f"{p}/tcp": {} for p in spec.ports},
        }
    if spec.app is not None:
        runtime.setdefault("WorkingDir", spec.app_path)
    runtime["Labels"] = {**(runtime.get("Labels") or {}), **labels}
    rootfs = dict(config.get("rootfs") or {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *(str(layer.diff_id) for layer in layers)]
    history = [*(config.get("history") or [])]
    history += [
        {"created": created, "created_by": f"mloci image build ({what})", "comment": "mloci"}
        for what in ("model", "app")[: len(layers)]
    ]
    return {**config, "created": created, "config": runtime, "rootfs": rootfs, "history": history}


def build_image(
    source: str,
    spec: ImageSpec,
    *,
    session: Session | None = None,
    push: bool = True,
) -> ImageResult:
    """Build an inference image for ``source`` (a bundle directory or a model reference)."""
    scope = scoped(session)
    workdir = settings.home() / "tmp" / "image-build"
    workdir.mkdir(parents=True, exist_ok=True)
    model = (
        _model_from_bundle(Path(source))
        if Path(source).is_dir()
        else _model_from_reference(parse_reference(source), workdir, scope.session)
    )
    target = spec.repository.with_tag(None).with_digest(None)
    if not push:
        target = Reference(None, target.repository)
    model_path = f"{spec.model_root.rstrip('/')}/{model.name}"
    mtime = int(model.created.timestamp())
    entries = [e for e in iter_entries(model.files, model_path) if not e.path.endswith("/.mloci/pull.json")]
    layers = [build_layer(entries, workdir=workdir, mtime=mtime)]
    if spec.app is not None:
        if not spec.app.is_dir():
            raise UsageError(f"--app {spec.app} is not a directory")
        layers.append(build_layer(list(iter_entries(spec.app, spec.app_path)), workdir=workdir, mtime=mtime))
    base_store = scope.session.store(spec.base)
    target_store = scope.session.store(target)
    try:
        base_descriptor, platforms = _platform_manifests(base_store, spec.base)
        pinned_base = spec.base.pinned(base_descriptor.digest)
        labels = {
            ann.VERSION: model.version,
            ann.TITLE: model.name,
            ann.BASE_NAME: str(spec.base.with_digest(None)),
            ann.BASE_DIGEST: str(base_descriptor.digest),
            ann.MODEL_DIGEST: str(model.digest),
            ann.CREATED: rfc3339(model.created),
            **({ann.REVISION: model.revision} if model.revision else {}),
            **({ann.SOURCE: spec.source_url} if spec.source_url else {}),
            **spec.labels,
        }
        for layer in layers:
            target_store.push_blob(target.repository, layer.blob)
        copier = Copier(
            base_store, pinned_base, target_store, target, concurrency=scope.session.options.concurrency
        )
        built: list[tuple[Descriptor, bytes]] = []
        for descriptor, manifest in platforms:
            for blob in manifest.layers:
                copier.blob(blob)
            config = _read_json(base_store, spec.base.repository, manifest.config)
            new_config = canonical_json(_new_config(config, spec, model, model_path, layers, labels))
            # Docker's config media type has an OCI twin with the same content.
            config_blob = Blob.of_bytes(mediatype.OCI_CONFIG, new_config)
            target_store.push_blob(target.repository, config_blob)
            image = Manifest(
                media_type=mediatype.OCI_MANIFEST,
                config=config_blob.descriptor,
                layers=[*(_as_oci(d) for d in manifest.layers), *(layer.blob.descriptor for layer in layers)],
                annotations=labels,
            )
            data = image.to_json()
            pushed = target_store.push_manifest(
                target.with_digest(Digest.of(data)), data, mediatype.OCI_MANIFEST
            )
            platform = descriptor.platform if descriptor is not base_descriptor else None
            built.append((pushed.model_copy(update={"platform": platform}), data))
        if len(built) == 1 and base_descriptor.media_type not in mediatype.INDEX_TYPES:
            final_media, final = mediatype.OCI_MANIFEST, built[0][1]
        else:
            index = Index(manifests=[d for d, _ in built], annotations=labels)
            final_media, final = mediatype.OCI_INDEX, index.to_json()
        version = version_tag(model.version)
        tags = (f"{version}-{model.revision[:7]}", version) if model.revision else (version,)
        for tag in tags:
            target_store.push_manifest(target.with_tag(tag), final, final_media)
        digest = Digest.of(final)
        platforms_out = tuple(
            f"{d.platform.os}/{d.platform.architecture}" if d.platform else "default" for d, _ in built
        )
        return ImageResult(target.with_tag(tags[0]).pinned(digest), digest, model.digest, platforms_out, tags)
    finally:
        for layer in layers:
            layer.remove()
        scope.close()


def _as_oci(descriptor: Descriptor) -> Descriptor:
    """Docker layer media types have OCI twins; keep digests, use the OCI names in an OCI manifest."""
    docker = {
        mediatype.DOCKER_LAYER_TAR_GZIP: mediatype.OCI_LAYER_TAR_GZIP,
        mediatype.DOCKER_LAYER_TAR: mediatype.OCI_LAYER_TAR,
    }
    media_type = docker.get(descriptor.media_type, descriptor.media_type)
    return descriptor.model_copy(update={"media_type": media_type})


def split_command(text: str | None) -> list[str] | None:
    return shlex.split(text) if text is not None else None


__all__ = ["Entry", "ImageResult", "ImageSpec", "build_image", "split_command"]
