"""Models as mountable images: files under ``/models/<name>`` in an ordinary image, no base, no runtime.

Container runtimes cannot mount a ModelPack artifact (raw layers) as a volume, but they can mount
an image: Kubernetes image volumes (KEP-4639, ``volumes[].image``) and KServe modelcars both take one.
This packs the bundle as an image index with linux/amd64 and linux/arm64 entries (runtimes pick
the node's platform; the layers are shared, only the config differs), reproducibly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mloci import settings
from mloci.bundle.git import git_state
from mloci.bundle.load import load_bundle
from mloci.bundle.pack import pack, source_date, version_tag, with_git
from mloci.image.layer import Entry, build_layer
from mloci.ops.progress import Silent, TransferListener
from mloci.ops.push import PushResult, check_tags, target_for
from mloci.store import Session, Store, scoped
from mloci.store.base import BlobOutcome
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Index, Manifest, Platform, canonical_json
from mloci.types.timestamps import rfc3339

PLATFORMS = ("amd64", "arm64")


def _upload_layer(store: Store, repository: str, blob: Blob, listener: TransferListener) -> BlobOutcome:
    size = blob.descriptor.size
    key = str(blob.descriptor.digest)
    listener.begin(size, 1)
    try:
        listener.started(key, "model layer", size)
        outcome: BlobOutcome = "present"
        if not store.has_blob(repository, blob.descriptor.digest):
            outcome = store.push_blob(repository, blob, progress=lambda n: listener.advance(key, n))
        listener.finished(key, skipped=outcome != "uploaded")
        return outcome
    finally:
        listener.end()


def push_image_volume(
    path: Path,
    target: str | None = None,
    *,
    session: Session | None = None,
    model_root: str = "/models",
    extra_tags: Sequence[str] = (),
    force: bool = False,
    listener: TransferListener | None = None,
) -> PushResult:
    """Pack the bundle at ``path`` as a mountable image and push it (tags ``<version>-image``…)."""
    bundle = with_git(load_bundle(path), git_state(path))
    model = pack(bundle)
    manifest = bundle.manifest
    created = source_date(manifest)
    root = f"{model_root.rstrip('/')}/{manifest.name}"
    entries = [Entry(f"{root}/{f.path}", f.source) for f in bundle.files]
    ref, extra = target_for(manifest.name, target)
    workdir = settings.home() / "tmp" / "image-volume"
    layer = build_layer(entries, workdir=workdir, mtime=int(created.timestamp()))
    scope = scoped(session)
    store = scope.session.store(ref)
    try:
        labels = {
            ann.TITLE: manifest.name,
            ann.VERSION: manifest.version,
            ann.CREATED: rfc3339(created),
            ann.MODEL_DIGEST: str(model.digest),
            **({ann.REVISION: manifest.git_sha} if manifest.git_sha else {}),
        }
        sent: dict[Digest, tuple[BlobOutcome, int]] = {}

        def put(blob: Blob) -> None:
            present = store.has_blob(ref.repository, blob.descriptor.digest)
            done: BlobOutcome = "present" if present else store.push_blob(ref.repository, blob)
            sent[blob.descriptor.digest] = (done, blob.descriptor.size)

        outcome = _upload_layer(store, ref.repository, layer.blob, listener or Silent())
        sent[layer.blob.descriptor.digest] = (outcome, layer.blob.descriptor.size)
        children = []
        for arch in PLATFORMS:
            config = {
                "architecture": arch,
                "os": "linux",
                "created": rfc3339(created),
                "config": {"Labels": labels, "Env": [f"MODEL_PATH={root}"]},
                "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
                "history": [{"created": rfc3339(created), "created_by": "mloci push --format image-volume"}],
            }
            config_blob = Blob.of_bytes(mediatype.OCI_CONFIG, canonical_json(config))
            put(config_blob)
            image = Manifest(
                config=config_blob.descriptor, layers=[layer.blob.descriptor], annotations=labels
            )
            data = image.to_json()
            pushed = store.push_manifest(ref.with_digest(Digest.of(data)), data, mediatype.OCI_MANIFEST)
            children.append(pushed.model_copy(update={"platform": Platform(architecture=arch, os="linux")}))
        index = Index(manifests=children, annotations={**labels, ann.FORMAT: mediatype.MODEL_IMAGE_VOLUME})
        data = index.to_json()
        digest = Digest.of(data)
        version = version_tag(manifest.version)
        tags = [
            f"{version}-image",
            *([f"{version}-{manifest.git_sha[:7]}-image"] if manifest.git_sha else []),
            *extra,
            *extra_tags,
        ]
        pending = check_tags(store, ref, tags, digest, force=force)
        for tag in pending:
            store.push_manifest(ref.with_tag(tag), data, mediatype.OCI_INDEX)
        outcomes = [outcome for outcome, _ in sent.values()]
        return PushResult(
            ref.with_tag(tags[0]).pinned(digest),
            digest,
            tuple(tags),
            outcomes.count("uploaded"),
            outcomes.count("present"),
            sum(size for outcome, size in sent.values() if outcome == "uploaded"),
            not pending,
            labels,
            blobs_mounted=outcomes.count("mounted"),
        )
    finally:
        layer.remove()
        scope.close()
