"""Attestations that arrive with uploads (PEP 740, ``twine upload --attestations``), kept as referrers.

Each attestation is stored as the sigstore bundle it stands for, attached to the release like
``mloci attach … --artifact-type application/vnd.dev.sigstore.bundle.v0.3+json`` would. Adding a
file gives a release a new digest, so bundles that attest a file of the release are attached
again to the new digest: a wheel's provenance survives the upload of its sdist.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from mloci.errors import UsageError
from mloci.ops import referrers
from mloci.ops.sign import bundle_referrers, fetch_bundle
from mloci.pyindex import provenance
from mloci.python.artifact import Release
from mloci.store import Store
from mloci.trust import Rejected
from mloci.trust.bundle import BUNDLE_V03, CONTENT_ANNOTATION, PREDICATE_ANNOTATION
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.manifest import Descriptor, Manifest
from mloci.types.reference import Reference

MAX_ATTESTATIONS = 16


def parse_upload(field: str, filename: str, sha256: str) -> list[bytes]:
    """The bundles behind the ``attestations`` form field (a JSON list of PEP 740 attestation
    objects); UsageError unless every one attests ``filename`` with ``sha256``."""
    try:
        values = json.loads(field)
    except ValueError as exc:
        raise UsageError(f"the attestations field is not JSON: {exc}") from None
    if not isinstance(values, list) or not values:
        raise UsageError("the attestations field must be a non-empty JSON list of attestation objects")
    if len(values) > MAX_ATTESTATIONS:
        raise UsageError(
            f"{len(values)} attestations for {filename}; at most {MAX_ATTESTATIONS} are accepted"
        )
    bundles = []
    for index, value in enumerate(values):
        try:
            bundle = provenance.bundle_of(value)
        except ValueError as exc:
            raise UsageError(f"attestation {index} of {filename}: {exc}") from None
        if provenance.attestation_for(bundle, filename, sha256) is None:
            raise UsageError(
                f"attestation {index} does not attest {filename} (sha256 {sha256})",
                hint="its statement needs exactly one subject with this file name and digest, "
                "and a PEP 740 predicate type",
            )
        bundles.append(bundle)
    return bundles


def attach(store: Store, repository: Reference, release: Descriptor, bundle: bytes) -> None:
    """Attach ``bundle`` to the release manifest ``release``; the same bundle twice is one referrer."""
    blob = Blob.of_bytes(BUNDLE_V03, bundle)
    empty = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    for item in (empty, blob):
        if not store.has_blob(repository.repository, item.descriptor.digest):
            store.push_blob(repository.repository, item)
    predicate = provenance.predicate_type(bundle)
    annotations = {
        CONTENT_ANNOTATION: "dsse-envelope",
        **({PREDICATE_ANNOTATION: predicate} if predicate else {}),
    }
    manifest = Manifest(
        artifact_type=BUNDLE_V03,
        config=empty.descriptor,
        layers=[blob.descriptor],
        subject=Descriptor(media_type=release.media_type, digest=release.digest, size=release.size),
        annotations=annotations,
    )
    referrers.attach(store, repository, manifest)


def carry_forward(store: Store, repository: Reference, old: Release, new: Descriptor) -> int:
    """Attach to the release manifest ``new`` the bundles of ``old`` that attest one of its files
    (published files never change, so they attest the same files in ``new``); how many."""
    carried = 0
    for entry in bundle_referrers(store, repository, old.digest):
        try:
            data = fetch_bundle(store, repository, old.digest, entry)
        except Rejected:
            continue
        if any(
            file.sha256 and provenance.attestation_for(data, file.filename, file.sha256) for file in old.files
        ):
            attach(store, repository, new, data)
            carried += 1
    return carried


def attach_all(store: Store, repository: Reference, descriptor: Descriptor, bundles: Sequence[bytes]) -> None:
    for bundle in bundles:
        attach(store, repository, descriptor, bundle)
