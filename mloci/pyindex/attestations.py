"""Attestations that arrive with uploads (PEP 740, ``twine upload --attestations``), kept as referrers.

Each attestation is stored as the sigstore bundle it stands for, attached to the release like
``mloci attach … --artifact-type application/vnd.dev.sigstore.bundle.v0.3+json`` would. When a
later file or a yank gives the release a new digest, :mod:`mloci.ops.wheel_attestations` attaches
them again, so a wheel's provenance survives the upload of its sdist.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from mloci.errors import UsageError
from mloci.ops.wheel_attestations import attach_bundle
from mloci.pyindex import provenance
from mloci.store import Store
from mloci.types.manifest import Descriptor
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


def attach_all(store: Store, repository: Reference, release: Descriptor, bundles: Sequence[bytes]) -> None:
    """Attach the upload's bundles to the release manifest ``release``."""
    for bundle in bundles:
        attach_bundle(store, repository, release, bundle)
