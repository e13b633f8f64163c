"""Attestations of a release's *files* (PEP 740 bundles) follow the release to its new digests.

A release's digest changes when a file is added or it is yanked; a referrer belongs to one digest.
Sigstore bundles attached to a release whose in-toto statement names only files of that release
(by name and sha256) stay true for every later digest, since published files never change: they
are attached again to the new digest. Signatures of the release manifest itself (``mloci sign``)
name the old digest and are not carried: sign a release once it is complete (docs/wheels.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from mloci.errors import MlociError
from mloci.ops import referrers
from mloci.ops.sign import bundle_referrers, fetch_bundle
from mloci.python.artifact import Release
from mloci.store import Store
from mloci.trust import Rejected
from mloci.trust.bundle import BUNDLE_V03, CONTENT_ANNOTATION, PREDICATE_ANNOTATION, Bundle
from mloci.trust.dsse import IN_TOTO_PAYLOAD
from mloci.trust.intoto import COSIGN_SIGN_V1
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest
from mloci.types.reference import Reference

log = logging.getLogger("mloci.wheel")


def attests_files(data: bytes, files: Mapping[str, str]) -> bool:
    """Whether a sigstore bundle is a DSSE in-toto statement whose subjects are all files in
    ``files`` (file name → sha256)."""
    try:
        bundle = Bundle.from_json(data)
        if bundle.envelope is None or bundle.envelope.payload_type != IN_TOTO_PAYLOAD:
            return False
        statement = json.loads(bundle.envelope.payload)
    except (ValueError, RecursionError):
        return False
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    if not isinstance(subjects, list) or not subjects:
        return False
    for subject in subjects:
        digest = subject.get("digest") if isinstance(subject, dict) else None
        name = subject.get("name") if isinstance(subject, dict) else None
        if (
            not isinstance(name, str)
            or not isinstance(digest, dict)
            or files.get(name) != digest.get("sha256")
        ):
            return False
    return True


def attach_bundle(store: Store, repository: Reference, subject: Descriptor, data: bytes) -> None:
    """Attach a sigstore bundle to ``subject`` as ``mloci attach`` would; the same bundle twice is one referrer."""
    blob = Blob.of_bytes(BUNDLE_V03, data)
    empty = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    for item in (empty, blob):
        if not store.has_blob(repository.repository, item.descriptor.digest):
            store.push_blob(repository.repository, item)
    try:
        predicate = Bundle.from_json(data).predicate_type
    except ValueError:
        predicate = None
    annotations = {
        CONTENT_ANNOTATION: "dsse-envelope",
        **({PREDICATE_ANNOTATION: predicate} if predicate else {}),
    }
    manifest = Manifest(
        artifact_type=BUNDLE_V03,
        config=empty.descriptor,
        layers=[blob.descriptor],
        subject=Descriptor(media_type=subject.media_type, digest=subject.digest, size=subject.size),
        annotations=annotations,
    )
    referrers.attach(store, repository, manifest)


def carry_forward(store: Store, repository: Reference, old: Release, new: Digest) -> int:
    """Attach to release manifest ``new`` the bundles of ``old`` that attest its files; how many.

    Best effort: a failure is logged, never raised (the files were published all the same), and
    the bundles can be attached again by hand.
    """
    if new == old.digest:
        return 0
    files = {f.filename: f.sha256 for f in old.files if f.sha256}
    carried = 0
    try:
        subject: Descriptor | None = None
        for entry in bundle_referrers(store, repository, old.digest):
            if (entry.annotations or {}).get(PREDICATE_ANNOTATION) == COSIGN_SIGN_V1:
                continue  # a signature of the old manifest
            try:
                data = fetch_bundle(store, repository, old.digest, entry)
            except Rejected:
                continue
            if attests_files(data, files):
                subject = subject or store.resolve(repository.with_tag(None).with_digest(new))
                attach_bundle(store, repository, subject, data)
                carried += 1
    except MlociError as exc:
        log.warning(
            "the attestations of %s %s were not carried to %s: %s", old.project, old.version, new, exc
        )
    return carried
