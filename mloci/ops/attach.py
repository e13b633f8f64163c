"""Attach any report to an artifact as an OCI 1.1 referrer, and discover everything attached to one.

An attachment is an image manifest with ``artifactType``, the OCI empty config
(``application/vnd.oci.empty.v1+json``, ``{}``), one layer holding the file, and ``subject`` =
the artifact's manifest. Registries with the referrers API index it; elsewhere it goes into
the ``sha256-<hex>`` fallback index (:mod:`mloci.ops.referrers`), artifactType and annotations
included. :func:`discover` walks referrers recursively (a signature on an SBOM shows under the
SBOM) and also reports cosign's tag-based ``.sig``/``.att``/``.sbom`` manifests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from mloci.errors import NotFoundError, UsageError
from mloci.ops import referrers
from mloci.store import Session, Store, scoped
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest, hash_file
from mloci.types.kinds import kind_of
from mloci.types.manifest import Descriptor, Manifest
from mloci.types.reference import Reference
from mloci.types.timestamps import now_rfc3339

# cosign's tag suffixes and what each holds.
COSIGN_TAGS: Final = {".sig": "signatures", ".att": "attestations", ".sbom": "sbom"}

# RFC 6838 restricted names, which the image spec requires of artifactType.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"{_NAME}/{_NAME}")
# A report larger than this is attached without checking that it parses.
_MAX_CHECKED = 64 << 20
_MAX_DEPTH = 8


def check_media_type(value: str, what: str) -> str:
    if not _MEDIA_TYPE.fullmatch(value):
        raise UsageError(
            f"{what} {value!r} is not a media type", hint="e.g. application/vnd.example.report+json"
        )
    return value


# -- attach --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttachResult:
    reference: Reference  # the attachment: repository@<its digest>
    digest: Digest  # the attachment manifest's digest
    artifact_type: str
    subject: Reference  # the artifact it is attached to, pinned
    layer: Descriptor
    annotations: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "artifactType": self.artifact_type,
            "subject": str(self.subject),
            "subjectDigest": str(self.subject.digest),
            "layer": self.layer.to_dict(),
            "annotations": self.annotations,
        }


def subject_descriptor(store: Store, reference: Reference) -> Descriptor:
    """The manifest ``reference`` names, as a plain descriptor fit for a ``subject`` field."""
    if reference.tag is None and reference.digest is None:
        raise UsageError(f"{reference} names no tag or digest", hint="add :TAG or @sha256:…")
    descriptor = store.resolve(reference)
    return Descriptor(media_type=descriptor.media_type, digest=descriptor.digest, size=descriptor.size)


def attach_blob(
    reference: Reference,
    blob: Blob,
    *,
    artifact_type: str,
    annotations: Mapping[str, str] | None = None,
    created: str | None = None,
    session: Session | None = None,
) -> AttachResult:
    """Push ``blob`` as the one layer of a referrer of type ``artifact_type`` whose subject ``reference`` names.

    ``created`` (RFC 3339) becomes ``org.opencontainers.image.created``; it defaults to now. With a
    fixed value, attaching the same content again yields the same manifest and changes nothing.
    """
    check_media_type(artifact_type, "artifact type")
    check_media_type(blob.descriptor.media_type, "media type")
    with scoped(session) as active:
        store = active.store(reference)
        subject = subject_descriptor(store, reference)
        empty = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
        for item in (empty, blob):
            if not store.has_blob(reference.repository, item.descriptor.digest):
                store.push_blob(reference.repository, item)
        manifest_annotations = {ann.CREATED: created or now_rfc3339(), **(annotations or {})}
        manifest = Manifest(
            artifact_type=artifact_type,
            config=empty.descriptor,
            layers=[blob.descriptor],
            subject=subject,
            annotations=manifest_annotations,
        )
        entry = referrers.attach(store, reference, manifest)
        repo = reference.with_tag(None)
        return AttachResult(
            reference=repo.with_digest(entry.digest),
            digest=entry.digest,
            artifact_type=artifact_type,
            subject=reference.pinned(subject.digest),
            layer=blob.descriptor,
            annotations=manifest_annotations,
        )


def _check_content(path: Path, media_type: str, size: int) -> None:
    """Refuse a ``+json`` report that is not JSON: a registry would keep garbage forever."""
    if not (media_type.endswith("+json") or media_type.endswith("/json")) or size > _MAX_CHECKED:
        return
    try:
        json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON, but {media_type} says it is: {exc}") from None


def attach_file(
    reference: Reference,
    path: Path,
    *,
    artifact_type: str,
    media_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
    session: Session | None = None,
) -> AttachResult:
    """Attach the file at ``path`` (test results, a scan, an evaluation, an SBOM…) to ``reference``.

    The layer's media type is ``media_type``, else ``artifact_type``; its title annotation is the
    file name, so ``mloci pull`` of the attachment writes the file back under that name.
    """
    layer_type = check_media_type(media_type or artifact_type, "media type")
    if not path.is_file():
        raise UsageError(f"{path} is not a file")
    try:
        digest, size = hash_file(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    _check_content(path, layer_type, size)
    descriptor = Descriptor(
        media_type=layer_type, digest=digest, size=size, annotations={ann.TITLE: path.name}
    )
    return attach_blob(
        reference,
        Blob(descriptor, path=path),
        artifact_type=artifact_type,
        annotations=annotations,
        session=session,
    )


# -- discover ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CosignEntry:
    """A cosign tag-based attachment: ``sha256-<hex>.sig`` / ``.att`` / ``.sbom``."""

    kind: str  # signatures, attestations, sbom
    tag: str
    digest: Digest
    layers: int

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "digest": str(self.digest), "layers": self.layers}


@dataclass(frozen=True)
class Node:
    """One referrer and, recursively, what refers to it."""

    descriptor: Descriptor
    referrers: tuple[Node, ...] = ()
    cosign: tuple[CosignEntry, ...] = ()

    @property
    def artifact_type(self) -> str | None:
        return self.descriptor.artifact_type

    @property
    def kind(self) -> str | None:
        kind = kind_of(self.descriptor.artifact_type, self.descriptor.annotations)
        return kind.label if kind else None

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "digest": str(self.descriptor.digest),
            "mediaType": self.descriptor.media_type,
            "artifactType": self.descriptor.artifact_type,
            "kind": self.kind,
            "annotations": dict(self.descriptor.annotations or {}),
            "size": self.descriptor.size,
            "referrers": [n.to_json() for n in self.referrers],
        }
        if self.cosign:
            value["cosign"] = {c.kind: c.to_json() for c in self.cosign}
        return value


@dataclass(frozen=True)
class DiscoverResult:
    reference: Reference  # pinned
    digest: Digest
    media_type: str
    referrers: tuple[Node, ...]
    cosign: tuple[CosignEntry, ...] = field(default=())

    def walk(self) -> list[Node]:
        """Every node of the tree, depth first."""
        found: list[Node] = []
        stack = list(reversed(self.referrers))
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(reversed(node.referrers))
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "mediaType": self.media_type,
            "referrers": [n.to_json() for n in self.referrers],
            "cosign": {c.kind: c.to_json() for c in self.cosign},
        }


def _cosign_entries(store: Store, repo: Reference, digest: Digest, tags: set[str]) -> tuple[CosignEntry, ...]:
    entries = []
    base = f"{digest.algorithm}-{digest.encoded}"
    for suffix, kind in COSIGN_TAGS.items():
        tag = base + suffix
        if tag not in tags:
            continue
        try:
            descriptor, data = store.fetch_manifest(repo.with_digest(None).with_tag(tag))
        except NotFoundError:
            continue  # deleted since the tag list was read
        layers = 0
        if descriptor.media_type not in mediatype.INDEX_TYPES:
            layers = len(Manifest.from_json(data).layers)
        entries.append(CosignEntry(kind=kind, tag=tag, digest=descriptor.digest, layers=layers))
    return tuple(entries)


def discover(
    reference: Reference,
    *,
    artifact_type: str | None = None,
    session: Session | None = None,
    max_depth: int = _MAX_DEPTH,
) -> DiscoverResult:
    """Everything attached to the manifest ``reference`` names, as a tree.

    ``artifact_type`` filters the first level only: a matching attachment is shown with
    everything attached to it (e.g. the signature of an SBOM).
    """
    with scoped(session) as active:
        store = active.store(reference)
        root = subject_descriptor(store, reference)
        try:
            tags = set(store.list_tags(reference.repository))
        except NotFoundError:
            tags = set()
        repo = reference.with_tag(None).with_digest(None)

        def children(
            digest: Digest, depth: int, path: frozenset[Digest], only: str | None
        ) -> tuple[Node, ...]:
            if depth >= max_depth:
                return ()
            found = referrers.list_referrers(store, repo, digest, only)
            nodes = []
            for descriptor in sorted(
                found, key=lambda d: ((d.annotations or {}).get(ann.CREATED, ""), str(d.digest))
            ):
                if descriptor.digest in path:
                    continue  # a cycle: a registry can be made to hold one
                nodes.append(
                    Node(
                        descriptor=descriptor,
                        referrers=children(descriptor.digest, depth + 1, path | {descriptor.digest}, None),
                        cosign=_cosign_entries(store, repo, descriptor.digest, tags),
                    )
                )
            return tuple(nodes)

        return DiscoverResult(
            reference=reference.pinned(root.digest),
            digest=root.digest,
            media_type=root.media_type,
            referrers=children(root.digest, 0, frozenset({root.digest}), artifact_type),
            cosign=_cosign_entries(store, repo, root.digest, tags),
        )
