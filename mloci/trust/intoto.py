"""in-toto Statement v1 (in-toto/attestation ``spec/v1/statement.md``) and SLSA Provenance v1.

A statement is ``{"_type": "https://in-toto.io/Statement/v1", "subject": [{name?, uri?, digest}],
"predicateType": T, "predicate": {...}}``. cosign v3 image signatures are statements too, with
``predicateType`` ``https://sigstore.dev/cosign/sign/v1``, a subject without a name and an empty
or absent predicate. Early cosign (v1) wrote Statement v0.1 with the predicate type as the DSSE
``payloadType``; :func:`check_statement` accepts those only when asked to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from mloci.trust import Rejected, shown
from mloci.trust.cosign import strict_object
from mloci.trust.dsse import IN_TOTO_PAYLOAD
from mloci.types.digest import Digest

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
STATEMENT_V01: Final = "https://in-toto.io/Statement/v0.1"
SLSA_PROVENANCE_V1: Final = "https://slsa.dev/provenance/v1"
COSIGN_SIGN_V1: Final = "https://sigstore.dev/cosign/sign/v1"


def statement(subjects: Sequence[dict[str, Any]], predicate_type: str, predicate: Any) -> dict[str, Any]:
    """An in-toto Statement v1 (``predicate`` None: left out, as cosign v3 does for image signatures)."""
    value: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": list(subjects),
        "predicateType": predicate_type,
    }
    if predicate is not None:
        value["predicate"] = predicate
    return value


def subject(digest: Digest, name: str | None = None, uri: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {}
    if name:
        value["name"] = name
    if uri:
        value["uri"] = uri
    value["digest"] = {digest.algorithm: digest.encoded}
    return value


def slsa_provenance(
    *,
    build_type: str,
    external: dict[str, Any],
    internal: dict[str, Any],
    resolved_dependencies: list[dict[str, Any]],
    builder_id: str,
    builder_version: dict[str, str],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """The SLSA Provenance v1 predicate (slsa.dev/spec/v1.0/provenance)."""
    return {
        "buildDefinition": {
            "buildType": build_type,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": resolved_dependencies,
        },
        "runDetails": {"builder": {"id": builder_id, "version": builder_version}, "metadata": metadata},
    }


def subject_digests(value: dict[str, Any], algorithm: str) -> list[str]:
    """The ``algorithm`` digests the statement's subjects name."""
    subjects = value.get("subject")
    return [
        str(s["digest"][algorithm])
        for s in (subjects if isinstance(subjects, list) else [])
        if isinstance(s, dict) and isinstance(s.get("digest"), dict) and s["digest"].get(algorithm)
    ]


def check_statement(
    payload_type: str,
    payload: bytes,
    digest: Digest,
    predicate_type: str | None,
    *,
    legacy: bool = False,
) -> tuple[str, dict[str, Any]]:
    """Parse the statement of a DSSE envelope whose signature already verified.

    Rejected unless it is an in-toto Statement (v1; v0.1 too with ``legacy``) of
    ``predicate_type`` (None: any) whose subject names ``digest``. Returns the predicate type and
    the statement. Ranks 3 (not a statement) to 5 (another subject) follow a verified signature.
    """
    legacy_type = legacy and payload_type not in (IN_TOTO_PAYLOAD, "")
    if payload_type != IN_TOTO_PAYLOAD and not legacy_type:
        raise Rejected(f"payload type is {payload_type!r}, not {IN_TOTO_PAYLOAD!r}", 3)
    try:
        value = json.loads(payload, object_pairs_hook=strict_object)
    except (ValueError, UnicodeDecodeError):
        raise Rejected("the signed payload is not JSON", 3) from None
    accepted = (STATEMENT_TYPE, STATEMENT_V01) if legacy else (STATEMENT_TYPE,)
    if not isinstance(value, dict) or value.get("_type") not in accepted:
        raise Rejected(f"the signed payload is not an in-toto Statement v1 ({STATEMENT_TYPE})", 3)
    kind = value.get("predicateType")
    if legacy_type and kind != payload_type:
        raise Rejected(f"payload type {payload_type!r} is not the statement's predicate type {kind!r}", 3)
    if not isinstance(kind, str) or (predicate_type is not None and kind != predicate_type):
        raise Rejected(f"predicate type is {kind!r}, not {predicate_type!r}", 4)
    bound = subject_digests(value, digest.algorithm)
    if digest.encoded not in bound:
        names = ", ".join(f"{digest.algorithm}:{shown(b[:12])}…" for b in bound) or "nothing"
        raise Rejected(f"the statement's subject is {names}, not {digest}", 5)
    return kind, value
