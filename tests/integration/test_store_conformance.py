"""One suite every Store adapter passes: the local OCI layout and the real registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Registry

from mloci.errors import IntegrityError, NotFoundError
from mloci.store import LayoutStore, RegistryStore, Store
from mloci.types import Descriptor, Digest, Manifest, Reference, mediatype
from mloci.types.blob import Blob


@pytest.fixture(params=["layout", "registry"])
def store_and_ref(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Reference]]:
    if request.param == "layout":
        yield LayoutStore(tmp_path / "home"), Reference(None, "conf/model")
        return
    registry: Registry = request.getfixturevalue("registry")
    store = RegistryStore(registry.host)
    yield store, Reference(registry.host, "conf/model")
    store.close()


def artifact(payload: bytes) -> tuple[Blob, Blob, bytes]:
    config = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    layer = Blob.of_bytes("application/octet-stream", payload)
    manifest = Manifest(
        artifact_type="application/x-test",
        config=config.descriptor,
        layers=[layer.descriptor],
    )
    return config, layer, manifest.to_json()


def test_blob_round_trip_and_existence(store_and_ref: tuple[Store, Reference], tmp_path: Path) -> None:
    store, ref = store_and_ref
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w" * 3_000_000)
    blob = Blob(
        Descriptor(
            media_type="application/octet-stream", digest=Digest.of(source.read_bytes()), size=3_000_000
        ),
        path=source,
    )
    assert not store.has_blob(ref.repository, blob.descriptor.digest)
    seen: list[int] = []
    store.push_blob(ref.repository, blob, progress=seen.append)
    assert store.has_blob(ref.repository, blob.descriptor.digest)
    with store.open_blob(ref.repository, blob.descriptor) as chunks:
        assert b"".join(chunks) == source.read_bytes()


def test_manifest_bytes_are_kept_exactly(store_and_ref: tuple[Store, Reference]) -> None:
    store, ref = store_and_ref
    config, layer, data = artifact(b"hello")
    for blob in (config, layer):
        store.push_blob(ref.repository, blob)
    pushed = store.push_manifest(ref.with_tag("v1"), data, mediatype.OCI_MANIFEST)
    assert pushed.digest == Digest.of(data)
    resolved = store.resolve(ref.with_tag("v1"))
    assert (resolved.digest, resolved.size, resolved.media_type) == (
        pushed.digest,
        len(data),
        mediatype.OCI_MANIFEST,
    )
    _, by_tag = store.fetch_manifest(ref.with_tag("v1"))
    _, by_digest = store.fetch_manifest(ref.with_digest(pushed.digest))
    assert by_tag == by_digest == data
    assert "v1" in store.list_tags(ref.repository)


def test_missing_things_are_not_found(store_and_ref: tuple[Store, Reference]) -> None:
    store, ref = store_and_ref
    with pytest.raises(NotFoundError):
        store.resolve(ref.with_tag("nope"))
    with pytest.raises(NotFoundError):
        store.fetch_manifest(ref.with_digest(Digest.of(b"nothing")))
    missing = Descriptor.of_bytes("application/octet-stream", b"nothing")
    with pytest.raises(NotFoundError), store.open_blob(ref.repository, missing) as chunks:
        b"".join(chunks)


def test_reading_a_blob_under_a_wrong_descriptor_fails_integrity(
    store_and_ref: tuple[Store, Reference],
) -> None:
    store, ref = store_and_ref
    blob = Blob.of_bytes("application/octet-stream", b"genuine")
    store.push_blob(ref.repository, blob)
    lying = blob.descriptor.model_copy(update={"size": 3})
    with pytest.raises(IntegrityError), store.open_blob(ref.repository, lying) as chunks:
        b"".join(chunks)


def test_a_pushed_blob_must_match_its_digest(store_and_ref: tuple[Store, Reference]) -> None:
    store, ref = store_and_ref
    real = Blob.of_bytes("application/octet-stream", b"one")
    forged = Blob(Descriptor.of_bytes("application/octet-stream", b"two"), data=b"one")
    store.push_blob(ref.repository, real)
    with pytest.raises(IntegrityError):
        store.push_blob(ref.repository, forged)
    assert not store.has_blob(ref.repository, forged.descriptor.digest)
