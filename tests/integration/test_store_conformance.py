"""One suite every Store adapter passes: the local OCI layout and the real registry."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Registry

from mloci.errors import IntegrityError, NotFoundError, UnsupportedError
from mloci.store import (
    CollectsGarbage,
    IngestsFiles,
    LayoutStore,
    ListsRepositories,
    MountsBlobs,
    RegistryStore,
    RepairsBlobs,
    Session,
    Store,
    StreamsUploads,
)
from mloci.types import Descriptor, Digest, Manifest, Reference, mediatype
from mloci.types.blob import Blob


@pytest.fixture(params=["layout", "registry"])
def store_and_ref(request: pytest.FixtureRequest) -> Iterator[tuple[Store, Reference]]:
    """Each adapter as the one factory opens it."""
    registry = request.getfixturevalue("registry").host if request.param == "registry" else None
    ref = Reference(registry, "conf/model")
    with Session() as session:
        yield session.store(ref), ref


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
    assert store.push_blob(ref.repository, blob, progress=seen.append) == "uploaded"
    assert sum(seen) == 3_000_000  # progress reports every byte, once
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


def push_artifact(store: Store, ref: Reference, payload: bytes, tag: str | None) -> Descriptor:
    config, layer, data = artifact(payload)
    for blob in (config, layer):
        store.push_blob(ref.repository, blob)
    target = ref.with_tag(tag) if tag else ref.with_digest(Digest.of(data))
    return store.push_manifest(target, data, mediatype.OCI_MANIFEST)


def test_location_names_the_store(store_and_ref: tuple[Store, Reference]) -> None:
    store, ref = store_and_ref
    assert store.location and (ref.registry is None or ref.registry in store.location)


def test_untagged_manifests_are_kept_and_listed_by_no_tag(store_and_ref: tuple[Store, Reference]) -> None:
    store, ref = store_and_ref
    pushed = push_artifact(store, ref, b"untagged", None)
    descriptor, data = store.fetch_manifest(ref.with_digest(pushed.digest))
    assert descriptor.digest == pushed.digest == Digest.of(data)
    with contextlib.suppress(NotFoundError):  # distribution calls a repository without tags unknown
        assert store.list_tags(ref.repository) == []


def test_tags_move_and_list_sorted(store_and_ref: tuple[Store, Reference]) -> None:
    store, ref = store_and_ref
    first = push_artifact(store, ref, b"one", "b")
    second = push_artifact(store, ref, b"two", "a")
    assert store.list_tags(ref.repository) == ["a", "b"]
    _, data = store.fetch_manifest(ref.with_digest(second.digest))
    store.push_manifest(ref.with_tag("b"), data, mediatype.OCI_MANIFEST)
    assert store.resolve(ref.with_tag("b")).digest == second.digest != first.digest


def test_deleting_a_manifest_removes_it_and_its_tags(store_and_ref: tuple[Store, Reference]) -> None:
    store, ref = store_and_ref
    pushed = push_artifact(store, ref, b"doomed", "gone")
    store.delete_manifest(ref.repository, pushed.digest)
    with pytest.raises(NotFoundError):
        store.resolve(ref.with_tag("gone"))
    # The bytes may stay readable by digest until the store collects garbage (the local store).
    if isinstance(store, CollectsGarbage):
        store.collect_garbage(grace_seconds=0)
    with pytest.raises(NotFoundError):
        store.fetch_manifest(ref.with_digest(pushed.digest))


def test_referrers_are_listed_or_declared_unsupported(store_and_ref: tuple[Store, Reference]) -> None:
    store, ref = store_and_ref
    subject = push_artifact(store, ref, b"subject", "s")
    config = Blob.of_bytes(mediatype.OCI_EMPTY, b"{}")
    store.push_blob(ref.repository, config)
    referrer = Manifest(
        artifact_type="application/x-report",
        config=config.descriptor,
        layers=[config.descriptor],
        subject=subject,
    ).to_json()
    store.push_manifest(ref.with_digest(Digest.of(referrer)), referrer, mediatype.OCI_MANIFEST)
    found = store.referrers(ref.repository, subject.digest)
    if found is not None:  # None: no referrers API (distribution 2.8); callers use the tag fallback
        assert [d.digest for d in found] == [Digest.of(referrer)]
        assert found[0].artifact_type == "application/x-report"
        assert store.referrers(ref.repository, subject.digest, "application/x-other") == []


def test_a_pinned_fetch_verifies_the_digest(store_and_ref: tuple[Store, Reference]) -> None:
    store, ref = store_and_ref
    push_artifact(store, ref, b"x", "t")
    other = push_artifact(store, ref, b"y", None)
    with pytest.raises((NotFoundError, IntegrityError)):
        # The tag names another manifest than the digest: never the tag's bytes under a wrong digest.
        store.fetch_manifest(ref.with_tag("t").with_digest(Digest.of(b"not the manifest")))
    assert store.fetch_manifest(ref.with_tag("t").with_digest(other.digest))[0].digest == other.digest


def test_capabilities_are_declared_and_work(store_and_ref: tuple[Store, Reference], tmp_path: Path) -> None:
    store, ref = store_and_ref
    push_artifact(store, ref, b"listed", "v")
    if isinstance(store, ListsRepositories):
        with contextlib.suppress(UnsupportedError):  # a registry may refuse its catalog, and say so
            assert ref.repository in store.repositories()
    if isinstance(store, IngestsFiles):
        source = tmp_path / "file.bin"
        source.write_bytes(b"ingested")
        added: set[Digest] = set()
        digest, size = store.ingest_file(source, added=added)
        assert (digest, size) == (Digest.of(b"ingested"), 8)
        assert store.has_blob(ref.repository, digest)
        assert added == {digest}  # new blobs are reported (push statistics), present ones are not
        store.ingest_file(source, added=(again := set()))
        assert again == set()
    if isinstance(store, CollectsGarbage):
        orphan = Blob.of_bytes("application/octet-stream", b"orphan")
        assert store.push_blob(ref.repository, orphan) == "uploaded"
        assert store.push_blob(ref.repository, orphan) in ("present", "uploaded")
        assert store.collect_garbage(grace_seconds=0) >= 1
        assert not store.has_blob(ref.repository, orphan.descriptor.digest)
        assert store.resolve(ref.with_tag("v"))  # referenced content survives
    if isinstance(store, MountsBlobs):
        blob = Blob.of_bytes("application/octet-stream", b"shared")
        store.push_blob(ref.repository, blob)
        assert store.mount_blob("conf/elsewhere", blob.descriptor.digest, ref.repository)
        assert store.has_blob("conf/elsewhere", blob.descriptor.digest)
    if isinstance(store, StreamsUploads):
        source = tmp_path / "streamed.bin"
        source.write_bytes(b"s" * 100_000)
        upload = store.begin_stream(ref.repository)
        assert upload is not None
        sent: list[int] = []
        upload.send(source, 100_000, sent.append)
        upload.finish(Digest.of(source.read_bytes()))
        assert sum(sent) == 100_000
        assert store.has_blob(ref.repository, Digest.of(source.read_bytes()))


def test_every_adapter_declares_what_it_can(tmp_path: Path, registry: Registry) -> None:
    with Session() as session:
        layout = session.store(Reference(None, "x"))
        remote = session.store(Reference(registry.host, "x"))
    assert isinstance(layout, LayoutStore) and isinstance(remote, RegistryStore)
    assert {c.__name__ for c in CAPABILITIES if isinstance(layout, c)} == {
        "ListsRepositories",
        "IngestsFiles",
        "CollectsGarbage",
        "RepairsBlobs",
    }
    assert {c.__name__ for c in CAPABILITIES if isinstance(remote, c)} == {
        "ListsRepositories",
        "MountsBlobs",
        "StreamsUploads",
    }


CAPABILITIES = (ListsRepositories, MountsBlobs, IngestsFiles, CollectsGarbage, StreamsUploads, RepairsBlobs)
