"""cosign's legacy signature format (sigstore/cosign ``specs/SIGNATURE_SPEC.md``): wire format only.

The signatures of ``repo@sha256:<hex>`` live in one OCI image manifest tagged
``sha256-<hex>.sig``. Each signature is one layer of media type
``application/vnd.dev.cosign.simplesigning.v1+json``: its blob is the signed *simple-signing*
payload, and the layer annotation ``dev.cosignproject.cosign/signature`` holds the base64 of the
signature over the payload's exact bytes. Payload and config blob are shaped byte for byte as
cosign (go-containerregistry) writes them, so the digests equal cosign's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mloci.errors import UnsupportedError, UsageError
from mloci.trust import Rejected, shown
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, canonical_json
from mloci.types.reference import Reference

SIMPLE_SIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
COSIGN_SIGNATURE_TYPE: Final = "cosign container image signature"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"

# encoding/json (which cosign uses) escapes these even inside strings; mloci writes the same bytes.
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
# go-containerregistry's zero time, as in every config blob cosign writes.
_ZERO_TIME = "0001-01-01T00:00:00Z"


def signature_tag(digest: Digest) -> str:
    """cosign's tag for the signatures of ``digest``: ``sha256-<hex>.sig``."""
    if digest.algorithm != "sha256":
        raise UnsupportedError(f"cosign's signature tags only address sha256 digests, not {digest}")
    return f"{digest.algorithm}-{digest.encoded}.sig"


def docker_reference(reference: Reference) -> str:
    """``critical.identity.docker-reference`` as cosign writes it (go-containerregistry's Repository.Name)."""
    if reference.registry is None:
        return reference.repository  # the local store has no registry name
    registry, repository = reference.registry, reference.repository
    if registry in ("docker.io", "index.docker.io"):
        registry = "index.docker.io"
        if "/" not in repository:
            repository = f"library/{repository}"
    return f"{registry}/{repository}"


def check_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    """``annotations`` as signed claims; UsageError for an empty key or text that is not UTF-8."""
    clean: dict[str, str] = {}
    for key, value in annotations.items():
        if not key:
            raise UsageError("annotation keys cannot be empty")
        try:
            key.encode()
            value.encode()
        except UnicodeEncodeError:
            raise UsageError(f"annotation {key!r} is not valid UTF-8 text") from None
        clean[key] = value
    return clean


def simple_signing_payload(identity: str, digest: Digest, annotations: Mapping[str, str]) -> bytes:
    """The simple-signing payload, byte for byte as cosign serializes it.

    Go marshals the struct fields in declaration order (critical, optional; identity, image, type),
    which is also sorted order, and map keys sorted; ``optional`` is ``null`` without annotations;
    ``<``, ``>``, ``&``, U+2028 and U+2029 are escaped as ``\\u00XX``.
    """
    value = {
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": str(digest)},
            "type": COSIGN_SIGNATURE_TYPE,
        },
        "optional": dict(annotations) or None,
    }
    return canonical_json(value).decode().translate(_GO_ESCAPES).encode()


def config_blob(layers: list[Descriptor]) -> bytes:
    """The image config go-containerregistry computes for cosign's signature image.

    Field order is Go's (not sorted) so the bytes, and so the digest, equal cosign's.
    """
    config = {
        "architecture": "",
        "created": _ZERO_TIME,
        "history": [{"created": _ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [str(layer.digest) for layer in layers]},
        "config": {},
    }
    return json.dumps(config, separators=(",", ":")).encode()


def strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook refusing duplicate keys (two parsers must never read two documents)."""
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise ValueError(f"duplicate key {key!r}")
        value[key] = item
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` matched case-insensitively, as Go's encoding/json does; ambiguity is refused."""
    if not isinstance(obj, dict):
        raise Rejected(f"the signed payload is not a simple-signing document (at {name!r})", 1)
    matches = [key for key in obj if key.casefold() == name.casefold()]
    if len(matches) > 1:
        raise Rejected(f"the signed payload is ambiguous: {len(matches)} keys spell {name!r}", 1)
    return obj[matches[0]] if matches else None


@dataclass(frozen=True)
class SimpleSigning:
    """What a verified simple-signing payload says."""

    docker_reference: str
    annotations: dict[str, Any]


def check_payload(payload: bytes, digest: Digest, required: Mapping[str, str]) -> SimpleSigning:
    """Parse a payload whose signature already verified; Rejected unless it binds ``digest``.

    Its ``optional`` claims must hold every ``required`` pair.
    """
    try:
        document = json.loads(payload, object_pairs_hook=strict_object, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"the signed payload is not valid JSON ({exc})", 1) from None
    critical = _field(document, "critical")
    kind = _field(critical, "type")
    if kind != COSIGN_SIGNATURE_TYPE:
        raise Rejected(f"the signed payload is of type {kind!r}, not {COSIGN_SIGNATURE_TYPE!r}", 2)
    bound = _field(_field(critical, "image"), "docker-manifest-digest")
    if bound != str(digest):
        raise Rejected(f"the signed payload signs {shown(bound)}, not this artifact", 3)
    identity = _field(_field(critical, "identity"), "docker-reference")
    optional = _field(document, "optional")
    if optional is not None and not isinstance(optional, dict):
        raise Rejected("the signed payload's optional section is not an object", 2)
    claims: dict[str, Any] = optional or {}
    for name, value in required.items():
        if claims.get(name) != value:
            raise Rejected(f"the signed payload lacks annotation {name}={value}", 4)
    return SimpleSigning(shown(identity) if isinstance(identity, str) else "", claims)
