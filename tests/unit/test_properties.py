"""Round-trip properties of the core values: Reference and Digest parse ↔ str, canonical JSON."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mloci.types import Digest, Reference, canonical_json

_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_component = st.builds(
    lambda head, sep, tail: f"{head}{sep}{tail}" if tail else head,
    _alnum,
    st.sampled_from([".", "_", "__", "-", "--"]),
    st.one_of(st.just(""), _alnum),
)
_repository = st.lists(_component, min_size=1, max_size=4).map("/".join)
_tag = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from("aZ09_"),
    st.text(alphabet="abcXYZ019_.-", max_size=30),
)
_hex = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_registry = st.one_of(
    st.none(),
    st.sampled_from(["localhost", "127.0.0.1:5000", "registry.example.com", "ghcr.io", "[::1]:5000"]),
)


@settings(max_examples=100, deadline=None)
@given(_registry, _repository, st.one_of(st.none(), _tag), st.one_of(st.none(), _hex))
def test_reference_round_trips(
    registry: str | None, repository: str, tag: str | None, hexa: str | None
) -> None:
    first = repository.split("/", maxsplit=1)[0]
    if registry is None and "/" in repository and ("." in first or first == "localhost"):
        return  # a first component named like a host is a registry, as in Docker
    digest = Digest.parse(f"sha256:{hexa}") if hexa else None
    ref = Reference(registry, repository, tag, digest)
    text = str(ref)
    again = Reference.parse(text)
    assert again == ref
    assert str(again) == text


@settings(max_examples=100, deadline=None)
@given(_hex)
def test_digest_round_trips(hexa: str) -> None:
    digest = Digest.parse(f"sha256:{hexa}")
    assert Digest.parse(str(digest)) == digest
    assert str(digest) == f"sha256:{hexa}"


_json = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(_json)
def test_canonical_json_is_a_fixed_point(value: object) -> None:
    data = canonical_json(value)
    assert json.loads(data) == value
    assert canonical_json(json.loads(data)) == data  # same value, same bytes: one digest
