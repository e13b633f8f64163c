"""SBOM: a CycloneDX 1.6 JSON document (an ML-BOM) describing a model bundle or a pushed artifact.

Built with the maintained ``cyclonedx-python-lib``:

- ``metadata.component``: the model (type ``machine-learning-model``), its purl
  ``pkg:oci/<name>@sha256:…`` (with ``repository_url`` once pushed to a registry), license,
  authors, description, and a ``modelCard`` (inputs, outputs, metrics, intended use, datasets);
- ``components``: every file of the artifact with its SHA-256 (weights as
  ``machine-learning-model``, datasets as ``data``, the rest as ``file``), the pinned Python
  requirements as ``library`` components (``pkg:pypi/<name>@<version>``), the framework
  (``framework``), and the lineage datasets (``data``) the model card refers to;
- ``dependencies``: the model depends on its files, framework and libraries.

The library does not model ``modelCard`` yet, so it is added to the serialized document; the tests
validate the result against the CycloneDX 1.6 JSON schema shipped with the library.

The output is deterministic: bom-refs are derived from content, ``serialNumber`` is a UUIDv5 of
the model's manifest digest, ``metadata.timestamp`` is the artifact's creation time (see
docs/format.md, *Determinism*), and keys are sorted. The same bundle gives the same bytes.
A bundle directory is described as it would be pushed (its digest is the one ``push`` prints);
a reference is described from its manifest and the small bundle manifest layer only, so no
weights are downloaded.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cyclonedx import spdx
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.contact import OrganizationalContact
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from mloci import __version__, settings
from mloci.bundle.digests import default_cache
from mloci.bundle.git import git_state
from mloci.bundle.load import load_bundle
from mloci.bundle.locks import LockFile, lock_layer, parse_lock, read_lock
from mloci.bundle.manifest import BundleManifest
from mloci.bundle.pack import pack, source_date, with_git
from mloci.errors import NotFoundError, UsageError
from mloci.ops._parallel import CancelToken
from mloci.ops._purl import oci_purl, pypi_purl
from mloci.ops.attach import AttachResult, attach_blob
from mloci.ops.inspection import inspect
from mloci.ops.push import file_digests
from mloci.ops.refs import parse_reference
from mloci.store import Session, read_small_blob, scoped
from mloci.types import annotations as ann
from mloci.types import bundle_metadata, file_index, mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Manifest
from mloci.types.reference import Reference
from mloci.types.timestamps import rfc3339

SPEC_VERSION: Final = "1.6"
# Fixed namespace for serial numbers: uuid5(NAMESPACE_URL, "https://github.com/mloci/mloci/sbom").
_SERIAL_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/mloci/mloci/sbom")
_LAYER_TITLE: Final = "sbom.cdx.json"


@dataclass(frozen=True)
class _File:
    path: str
    kind: str  # ModelPack layer kind, or "file"
    digest: Digest
    size: int


@dataclass(frozen=True)
class _SbomSubject:
    """What an SBOM says, from a bundle directory or from an artifact in a store."""

    name: str
    version: str | None
    digest: Digest
    created: datetime | None
    manifest: BundleManifest | None
    files: tuple[_File, ...]
    reference: Reference | None  # None for a bundle directory
    description: str | None
    license: str | None
    locked: LockFile | None = None  # the bundle's lock file: the full transitive set of packages


@dataclass(frozen=True)
class SbomResult:
    document: bytes  # the CycloneDX JSON, as written
    digest: Digest  # the model's manifest digest
    reference: Reference | None  # the artifact, pinned (None for a bundle directory)
    components: int
    attached: AttachResult | None = None

    @property
    def sbom_digest(self) -> Digest:
        return Digest.of(self.document)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference) if self.reference else None,
            "digest": str(self.digest),
            "sbomDigest": str(self.sbom_digest),
            "specVersion": SPEC_VERSION,
            "components": self.components,
            "attached": self.attached.to_json() if self.attached else None,
        }


# -- collecting the facts ------------------------------------------------------------------------


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _from_directory(path: Path, *, concurrency: int = 4) -> _SbomSubject:
    bundle = with_git(load_bundle(path), git_state(path))
    cache = default_cache(settings.home())
    try:
        digests = file_digests(bundle, cache.hasher(), concurrency, CancelToken())
    finally:
        cache.close()
    packed = pack(bundle, digests=digests)
    # Tar layers (directories of many small files) are described file by file, as inspect lists them.
    index_blob = next(
        (b for b in packed.layers if b.descriptor.annotation(ann.ROLE) == file_index.ROLE_FILE_INDEX), None
    )
    packed_files = file_index.parse_index(index_blob.data or b"") if index_blob is not None else {}
    files = []
    for layer in packed.manifest.layers:
        parsed = mediatype.parse_model_layer(layer.media_type)
        kind = parsed[0] if parsed else "file"
        if index_blob is not None and layer.digest == index_blob.descriptor.digest:
            continue
        if bundle_metadata.is_metadata_layer(layer):
            continue  # mloci's metadata about the files, as inspect lists them
        if layer.digest in packed_files:
            files += [_File(f.path, kind, Digest.parse(f.digest), f.size) for f in packed_files[layer.digest]]
            continue
        files.append(
            _File(
                path=layer.annotation(ann.MODEL_FILEPATH) or "",
                kind=kind,
                digest=layer.digest,
                size=layer.size,
            )
        )
    manifest = packed.bundle_manifest
    return _SbomSubject(
        name=manifest.name,
        version=manifest.version,
        digest=packed.digest,
        created=source_date(manifest),
        manifest=manifest,
        files=tuple(files),
        reference=None,
        description=manifest.description,
        license=manifest.license,
        locked=read_lock(path, None),
    )


def _locked(reference: Reference, manifest: Manifest | None, session: Session | None) -> LockFile | None:
    """The lock file of an artifact, from the one small layer ``push`` marked as such."""
    found = lock_layer(manifest)
    if found is None:
        return None
    name, kind, layer = found
    with scoped(session) as active:
        data = read_small_blob(active.store(reference), reference.repository, layer)
    return parse_lock(name, kind, data.decode("utf-8", "replace"), None)


def _from_reference(reference: Reference, session: Session | None) -> _SbomSubject:
    info = inspect(reference, session=session)
    if info.media_type in mediatype.INDEX_TYPES:
        raise UsageError(f"{reference} is an image index; describe one of its manifests by digest")
    manifest = info.bundle  # None when another mloci version or tool wrote it: describe the files only
    annotations = info.annotations
    name = (
        (manifest.name if manifest else None)
        or annotations.get(ann.NAME)
        or annotations.get(ann.TITLE)
        or reference.repository.rsplit("/", 1)[-1]
    )
    files = tuple(
        _File(path=f.path or str(f.digest), kind=f.kind, digest=f.digest, size=f.size) for f in info.files
    )
    return _SbomSubject(
        name=name,
        version=(manifest.version if manifest else None) or annotations.get(ann.VERSION),
        digest=info.digest,
        created=_parse_time(annotations.get(ann.CREATED)),
        manifest=manifest,
        files=files,
        reference=info.reference,
        description=(manifest.description if manifest else None) or annotations.get(ann.DESCRIPTION),
        license=(manifest.license if manifest else None) or annotations.get(ann.LICENSES),
        locked=_locked(info.reference, info.manifest, session),
    )


# -- building the document -----------------------------------------------------------------------

_FILE_TYPES: Final = {
    "weight": ComponentType.MACHINE_LEARNING_MODEL,
    "dataset": ComponentType.DATA,
}


def _sha256(digest: Digest) -> list[HashType]:
    return (
        [HashType(alg=HashAlgorithm.SHA_256, content=digest.encoded)] if digest.algorithm == "sha256" else []
    )


def _properties(model: _SbomSubject) -> list[Property]:
    values: dict[str, str | None] = {"mloci:manifest.digest": str(model.digest)}
    manifest = model.manifest
    if manifest is not None:
        values.update(
            {
                "mloci:framework": manifest.framework,
                "mloci:python": manifest.python,
                "mloci:python.requires": manifest.dependencies.python if manifest.dependencies else None,
                "mloci:git.commit": manifest.git_sha,
                "mloci:git.dirty": None if manifest.git_dirty is None else str(manifest.git_dirty).lower(),
                "mloci:train_time": rfc3339(manifest.train_time, fraction=True)
                if manifest.train_time
                else None,
                "mloci:training_run": manifest.lineage.training_run if manifest.lineage else None,
                "mloci:features": ",".join(manifest.features) or None,
            }
        )
    return [Property(name=k, value=v) for k, v in sorted(values.items()) if v is not None]


def _dataset_ref(uri: str) -> str:
    return f"dataset:{uri}"


def _components(model: _SbomSubject) -> tuple[list[Component], list[Component]]:
    """(what the model depends on, every other component) — files, framework, libraries; datasets."""
    depends: list[Component] = [
        Component(
            name=f.path,
            type=_FILE_TYPES.get(f.kind, ComponentType.FILE),
            bom_ref=f"file:{f.path}",
            hashes=_sha256(f.digest),
            properties=[Property(name="mloci:layer.kind", value=f.kind)],
        )
        for f in model.files
    ]
    others: list[Component] = []
    manifest = model.manifest
    if manifest is None:
        return depends, others
    if manifest.framework:
        name, _, version = manifest.framework.partition("-")
        depends.append(
            Component(
                name=name,
                version=version or None,
                type=ComponentType.FRAMEWORK,
                bom_ref=f"framework:{manifest.framework}",
            )
        )
    seen: set[str] = set()
    for requirement in manifest.dependencies.requirements if manifest.dependencies else []:
        parsed = pypi_purl(requirement)
        if parsed is None:
            continue  # the manifest schema only admits pinned requirements
        name, version, purl = parsed
        if purl in seen:
            continue
        seen.add(purl)
        depends.append(
            Component(
                name=name,
                version=version,
                type=ComponentType.LIBRARY,
                bom_ref=purl,
                purl=PackageURL.from_string(purl),
            )
        )
    locked = model.locked
    for package in locked.packages if locked else []:
        parsed = pypi_purl(f"{package.name}=={package.version}")
        if parsed is None or parsed[2] in seen or locked is None:
            continue
        seen.add(parsed[2])
        depends.append(
            Component(
                name=parsed[0],
                version=parsed[1],
                type=ComponentType.LIBRARY,
                bom_ref=parsed[2],
                purl=PackageURL.from_string(parsed[2]),
                properties=[Property(name="mloci:lock.file", value=locked.path)],
            )
        )
    for dataset in manifest.lineage.datasets if manifest.lineage else []:
        ref = _dataset_ref(dataset.uri)
        if ref in seen:
            continue
        seen.add(ref)
        props = [Property(name="mloci:dataset.uri", value=dataset.uri)]
        if dataset.split:
            props.append(Property(name="mloci:dataset.split", value=dataset.split))
        others.append(
            Component(
                name=dataset.name or dataset.uri,
                type=ComponentType.DATA,
                bom_ref=ref,
                hashes=_sha256(dataset.digest) if dataset.digest else [],
                properties=props,
            )
        )
    return depends, others


def _tensor(spec: Any) -> dict[str, str]:
    shape = ",".join("?" if d is None else str(d) for d in spec.shape)
    text = f"{spec.name}: {spec.dtype}[{shape}]"
    if spec.description:
        text += f" — {spec.description}"
    return {"format": text}


def _model_card(model: _SbomSubject) -> dict[str, Any] | None:
    """CycloneDX ``modelCard`` (1.5+) from the bundle manifest; None when there is nothing to say."""
    manifest = model.manifest
    if manifest is None:
        return None
    parameters: dict[str, Any] = {}
    if manifest.lineage and manifest.lineage.datasets:
        refs = list(dict.fromkeys(_dataset_ref(d.uri) for d in manifest.lineage.datasets))
        parameters["datasets"] = [{"ref": ref} for ref in refs]
    if manifest.inputs:
        parameters["inputs"] = [_tensor(t) for t in manifest.inputs]
    if manifest.outputs:
        parameters["outputs"] = [_tensor(t) for t in manifest.outputs]
    card: dict[str, Any] = {}
    if parameters:
        card["modelParameters"] = parameters
    if manifest.metrics:
        card["quantitativeAnalysis"] = {
            "performanceMetrics": [
                {"type": name, "value": json.dumps(value)} for name, value in sorted(manifest.metrics.items())
            ]
        }
    considerations: dict[str, Any] = {}
    if manifest.intended_use:
        considerations["useCases"] = [manifest.intended_use]
    if manifest.notes:
        considerations["technicalLimitations"] = [manifest.notes]
    if considerations:
        card["considerations"] = considerations
    if not card:
        return None
    card["bom-ref"] = "model-card"
    return card


def _license(value: str) -> License:
    """An SPDX id as ``license.id``, an SPDX expression as ``expression``, anything else by name."""
    known = spdx.fixup_id(value)
    if known is not None:
        return DisjunctiveLicense(id=known)
    if spdx.is_expression(value):
        return LicenseExpression(value)
    return DisjunctiveLicense(name=value)


def serial_number(digest: Digest) -> uuid.UUID:
    """The SBOM's serial number: a UUIDv5 of the model's manifest digest, so regenerating is stable."""
    return uuid.uuid5(_SERIAL_NAMESPACE, str(digest))


def render(model: _SbomSubject) -> tuple[bytes, int]:
    """The CycloneDX 1.6 JSON document for ``model`` and how many components it lists."""
    manifest = model.manifest
    licenses = [_license(model.license)] if model.license else []
    purl = oci_purl(model.name, model.digest, model.reference)
    root = Component(
        name=model.name,
        version=model.version,
        type=ComponentType.MACHINE_LEARNING_MODEL,
        bom_ref=purl,
        purl=PackageURL.from_string(purl),
        description=model.description,
        licenses=licenses,
        authors=[OrganizationalContact(name=a) for a in manifest.authors] if manifest else [],
        properties=_properties(model),
    )
    depends, others = _components(model)
    metadata = BomMetaData(component=root, timestamp=model.created or datetime(1970, 1, 1, tzinfo=UTC))
    metadata.tools.components.add(
        Component(name="mloci", version=__version__, type=ComponentType.APPLICATION, bom_ref="tool:mloci")
    )
    bom = Bom(serial_number=serial_number(model.digest), metadata=metadata, components=[*depends, *others])
    bom.register_dependency(root, depends)
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    if model.created is None:
        del document["metadata"]["timestamp"]  # unknown: better absent than invented
    else:
        document["metadata"]["timestamp"] = rfc3339(model.created)
    card = _model_card(model)
    if card is not None:
        document["metadata"]["component"]["modelCard"] = card
    text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return text.encode(), len(document.get("components", []))


# -- entry points --------------------------------------------------------------------------------


def sbom_for_bundle(path: Path, *, session: Session | None = None) -> SbomResult:
    """The SBOM of the bundle directory ``path``, as ``push`` would publish it (nothing is uploaded)."""
    model = _from_directory(path, concurrency=session.options.concurrency if session else 4)
    document, count = render(model)
    return SbomResult(document=document, digest=model.digest, reference=None, components=count)


def sbom_for_reference(
    reference: Reference, *, attach: bool = False, session: Session | None = None
) -> SbomResult:
    """The SBOM of the artifact ``reference`` names; with ``attach``, pushed as its referrer.

    The attachment has artifactType ``application/vnd.cyclonedx+json`` and the artifact's
    creation time, so attaching the same SBOM again adds nothing.
    """
    model = _from_reference(reference, session)
    document, count = render(model)
    attached = None
    if attach:
        layer = Blob.of_bytes(mediatype.CYCLONEDX_JSON, document)
        layer = Blob(
            layer.descriptor.model_copy(update={"annotations": {ann.TITLE: _LAYER_TITLE}}), data=document
        )
        created = rfc3339(model.created) if model.created else None
        attached = attach_blob(
            model.reference or reference,
            layer,
            artifact_type=mediatype.CYCLONEDX_JSON,
            annotations={ann.SBOM_SPEC: f"CycloneDX {SPEC_VERSION}"},
            created=created or "1970-01-01T00:00:00Z",
            session=session,
        )
    return SbomResult(
        document=document, digest=model.digest, reference=model.reference, components=count, attached=attached
    )


def sbom(target: str, *, attach: bool = False, session: Session | None = None) -> SbomResult:
    """``target`` is a bundle directory or a reference; see :func:`sbom_for_bundle` and :func:`sbom_for_reference`."""
    path = Path(target)
    if path.is_dir():
        if attach:
            raise UsageError(
                f"{target} is a bundle directory; only a pushed artifact can have an SBOM attached",
                hint="push it, then run 'mloci sbom REF --attach'",
            )
        return sbom_for_bundle(path, session=session)
    if path.exists():
        raise UsageError(f"{target} is a file; give a bundle directory or a reference")
    if target.startswith(("/", "./", "../", "~")):
        raise NotFoundError(f"no bundle directory {target}", hint="give a bundle directory or a reference")
    return sbom_for_reference(parse_reference(target), attach=attach, session=session)
