from __future__ import annotations

import pytest

from mloci.errors import UsageError
from mloci.types import Descriptor, Digest, Manifest, Reference, canonical_json

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("churn-model", None, "churn-model", None, None),
        ("churn-model:1.0.0", None, "churn-model", "1.0.0", None),
        (f"churn-model@sha256:{HEX}", None, "churn-model", None, f"sha256:{HEX}"),
        ("127.0.0.1:5000/ml/churn-model:1.0", "127.0.0.1:5000", "ml/churn-model", "1.0", None),
        (f"localhost/a/b/c:t@sha256:{HEX}", "localhost", "a/b/c", "t", f"sha256:{HEX}"),
        ("ghcr.io/org/model", "ghcr.io", "org/model", None, None),
        ("[::1]:5000/m:v", "[::1]:5000", "m", "v", None),
        ("my_org/my.model__x:v1_2-3", None, "my_org/my.model__x", "v1_2-3", None),
    ],
)
def test_reference_parse_and_round_trip(
    text: str, registry: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert (str(ref.digest) if ref.digest else None) == digest
    assert str(ref) == text
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        " churn",
        "Churn-Model",
        "churn-model:",
        "churn-model:-bad",
        "churn-model@sha256:abc",
        "churn-model@md5:" + "a" * 32,
        "reg.io/UPPER/x",
        "a//b",
        "a/../b",
        "churn model",
        "reg.io:5000/x:" + "t" * 129,
    ],
)
def test_bad_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        Reference.parse(text)


def test_default_registry_applies_only_to_short_names() -> None:
    assert str(Reference.parse("churn", default_registry="reg.io/ml")) == "reg.io/ml/churn"
    assert str(Reference.parse("other.io/x", default_registry="reg.io/ml")) == "other.io/x"


def test_digest_parse_and_compute() -> None:
    digest = Digest.of(b"")
    assert str(digest) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert Digest.parse(str(digest)) == digest
    with pytest.raises(UsageError):
        Digest.parse("sha256:" + "A" * 64)


def test_manifest_round_trip_keeps_unknown_fields_and_is_canonical() -> None:
    config = Descriptor.of_bytes("application/vnd.oci.empty.v1+json", b"{}")
    manifest = Manifest(config=config, layers=[], annotations={"b": "2", "a": "1"})
    data = manifest.to_json()
    assert data == canonical_json(manifest.to_dict())
    assert b" " not in data
    parsed = Manifest.from_json(data.replace(b'{"annotations"', b'{"x-future":1,"annotations"'))
    assert parsed.config.digest == config.digest
    assert parsed.model_extra == {"x-future": 1}
