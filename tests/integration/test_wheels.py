"""mloci wheel push / pull / yank against a real distribution registry, through the real CLI entry point."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import Registry, Runner, git, one_line_error, run_json
from pydists import core_metadata, sha256_of, write_sdist, write_wheel

from mloci.errors import ConflictError, UsageError
from mloci.ops.sign import generate_keypair, sign, verify
from mloci.ops.wheel import parse_release_spec, publish, read_release
from mloci.python.artifact import (
    ARTIFACT_TYPE,
    CORE_METADATA,
    FILETYPE,
    METADATA_FOR,
    METADATA_LAYER,
    REQUIRES_PYTHON,
    SDIST_LAYER,
    WHEEL_LAYER,
    YANKED,
)
from mloci.python.distribution import read_distribution
from mloci.python.filenames import normalize_name, parse_filename, version_of_tag, version_tag
from mloci.store import RegistryStore
from mloci.types import Manifest, Reference, mediatype
from mloci.types import annotations as ann


def push_one(mloci: Runner, *args: object) -> dict[str, Any]:
    releases: list[dict[str, Any]] = run_json(mloci, "wheel", "push", *args)["releases"]
    assert len(releases) == 1
    return releases[0]


def manifest_of(registry: Registry, repository: str, tag: str) -> tuple[str, Manifest]:
    store = RegistryStore(registry.host)
    try:
        descriptor, data = store.fetch_manifest(Reference(registry.host, repository, tag=tag))
        return str(descriptor.digest), Manifest.from_json(data)
    finally:
        store.close()


def blob_bytes(registry: Registry, digest: str) -> bytes:
    return registry.blob_data_path(digest).read_bytes()


# -- names and versions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "tag"),
    [("0.1.3", "0.1.3"), ("2.0rc1", "2.0rc1"), ("1.0+cpu.7", "1.0_cpu.7"), ("1!2.0.post1", "1-2.0.post1")],
)
def test_version_tags_round_trip(version: str, tag: str) -> None:
    assert version_tag(version) == tag
    assert str(version_of_tag(tag)) == version


@pytest.mark.parametrize(
    "tag", ["latest", "sha256-" + "a" * 64, "sha256-" + "a" * 64 + ".sig", "v1.0", "1.0-rc1"]
)
def test_other_tags_are_no_versions(tag: str) -> None:
    assert version_of_tag(tag) is None


def test_names_and_specs() -> None:
    assert normalize_name("Feature_Kit..x") == "feature-kit-x"
    with pytest.raises(UsageError):
        normalize_name("-bad")
    assert parse_filename("Feature_Kit-1.0-py3-none-any.whl").project == "feature-kit"
    spec = parse_release_spec("127.0.0.1:5000/py/Feature_Kit==1.0.0")
    assert (str(spec.repository), str(spec.version)) == ("127.0.0.1:5000/py/feature-kit", "1.0.0")
    assert str(parse_release_spec("127.0.0.1:5000/py/featurekit:1.0_cpu").version) == "1.0+cpu"
    assert parse_release_spec("127.0.0.1:5000/py/featurekit").version is None
    digest = "sha256:" + "b" * 64
    assert str(parse_release_spec(f"127.0.0.1:5000/py/featurekit@{digest}").digest) == digest
    with pytest.raises(UsageError, match="not a version"):
        parse_release_spec("127.0.0.1:5000/py/featurekit:latest")


# -- push and pull -------------------------------------------------------------------------------


def test_push_pull_round_trip_and_the_format(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    wheel = write_wheel(tmp_path / "dist")
    sdist = write_sdist(tmp_path / "dist")
    pushed = push_one(mloci, wheel, sdist, f"{registry.host}/py")
    repo = f"{registry.host}/py/featurekit"
    assert pushed["reference"] == f"{repo}:0.1.3@{pushed['digest']}"
    assert pushed["added"] == [wheel.name, sdist.name]

    digest, manifest = manifest_of(registry, "py/featurekit", "0.1.3")
    assert digest == pushed["digest"]
    assert manifest.artifact_type == ARTIFACT_TYPE
    assert manifest.config.media_type == mediatype.OCI_EMPTY
    assert manifest.annotations == {
        ann.TITLE: "featurekit",
        ann.VERSION: "0.1.3",
        ann.DESCRIPTION: "Features",
    }
    wheel_layer, metadata_layer, sdist_layer = (
        manifest.layers
    )  # sorted by file name, metadata after its wheel
    assert (sdist_layer.media_type, wheel_layer.media_type) == (SDIST_LAYER, WHEEL_LAYER)
    assert str(wheel_layer.digest) == f"sha256:{sha256_of(wheel)}"
    file_notes = dict(wheel_layer.annotations or {})
    assert file_notes.pop(ann.CREATED).endswith("Z")  # PEP 700 upload-time (test_index_pep700.py)
    assert file_notes == {
        ann.TITLE: wheel.name,
        FILETYPE: "bdist_wheel",
        REQUIRES_PYTHON: ">=3.9",
        CORE_METADATA: str(metadata_layer.digest),
    }
    assert metadata_layer.media_type == METADATA_LAYER
    assert metadata_layer.annotations == {ann.TITLE: f"{wheel.name}.metadata", METADATA_FOR: wheel.name}
    assert (
        blob_bytes(registry, str(metadata_layer.digest))
        == core_metadata("featurekit", "0.1.3", summary="Features").encode()
    )
    assert sdist_layer.annotation(FILETYPE) == "sdist" and sdist_layer.annotation(CORE_METADATA) is None

    out = tmp_path / "wheelhouse"
    pulled = run_json(mloci, "wheel", "pull", f"{registry.host}/py/FeatureKit==0.1.3", "-d", out)
    assert pulled["digest"] == digest
    assert sorted(p.name for p in out.iterdir()) == [wheel.name, sdist.name]
    assert sha256_of(out / wheel.name) == sha256_of(wheel) and sha256_of(out / sdist.name) == sha256_of(sdist)
    again = run_json(mloci, "wheel", "pull", f"{repo}==0.1.3", "-d", out)
    assert again["files"] == [] and len(again["unchanged"]) == 2
    only = run_json(mloci, "wheel", "pull", f"{repo}", "-d", tmp_path / "only", "--filter", "*.whl")
    assert [Path(p).name for p in only["files"]] == [wheel.name]


def test_a_version_gains_files_but_published_files_are_immutable(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    namespace = f"{registry.host}/py"
    first = write_wheel(tmp_path / "a")
    created = push_one(mloci, first, namespace)
    _, before = manifest_of(registry, "py/featurekit", "0.1.3")

    linux = write_wheel(tmp_path / "b", tag="cp311-cp311-manylinux_2_17_x86_64")
    grown = push_one(mloci, linux, namespace)
    assert grown["added"] == [linux.name] and grown["digest"] != created["digest"]
    _, after = manifest_of(registry, "py/featurekit", "0.1.3")
    # The published file and its metadata are kept byte for byte; the new wheel sorts before them.
    assert after.layers[2:] == before.layers and len(after.layers) == 4
    assert after.annotations == before.annotations

    puts = registry.requests_matching(r'"PUT /v2/py/featurekit/manifests/')
    same = push_one(mloci, first, linux, namespace)
    assert same["unchanged"] is True and same["digest"] == grown["digest"]
    assert registry.requests_matching(r'"PUT /v2/py/featurekit/manifests/') == puts

    other = write_wheel(tmp_path / "c", value=7)  # same file name, other bytes
    refused = mloci("wheel", "push", other, namespace)
    assert refused.exit_code == ConflictError.exit_code
    assert "immutable" in one_line_error(refused.stderr)
    assert manifest_of(registry, "py/featurekit", "0.1.3")[0] == grown["digest"]
    assert not registry.blob_data_path(f"sha256:{sha256_of(other)}").exists()


def test_bad_inputs_are_refused_with_one_line_and_nothing_is_stored(
    mloci: Runner, registry: Registry, tmp_path: Path
) -> None:
    namespace = f"{registry.host}/py"
    good = write_wheel(tmp_path / "good")
    text = tmp_path / "notes.txt"
    text.write_text("not a distribution")
    fake = tmp_path / "featurekit-0.1.3-py3-none-any.whl"
    fake.write_bytes(b"PK not really a zip")
    renamed = write_wheel(tmp_path / "renamed", metadata_name="otherkit")
    revised = write_wheel(tmp_path / "revised", metadata_version="0.1.4")
    no_info = write_sdist(tmp_path / "bad", pkg_info=False)
    cases = [
        (text, "neither a wheel nor an sdist"),
        (fake, "not a valid wheel"),
        (renamed, "its metadata says 'otherkit'"),
        (revised, "its metadata says 0.1.4"),
        (no_info, "not a valid sdist: it has no top-level PKG-INFO"),
    ]
    for bad, message in cases:
        result = mloci("wheel", "push", good, bad, namespace)  # the good file is not stored either
        assert result.exit_code == UsageError.exit_code, (bad, result.stderr)
        assert message in one_line_error(result.stderr), result.stderr
    assert registry.requests_matching(r'"(PUT|POST|PATCH) /v2/') == 0


def test_the_git_commit_is_recorded(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    project = tmp_path / "project"
    wheel = write_wheel(project / "dist")
    (project / ".gitignore").write_text("dist/\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "release")
    head = git(project, "rev-parse", "HEAD")
    pushed = push_one(mloci, wheel, f"{registry.host}/py")
    _, manifest = manifest_of(registry, "py/featurekit", "0.1.3")
    assert manifest.annotation(ann.REVISION) == head
    assert manifest.annotation(ann.GIT_DIRTY) == "false"
    assert manifest.layers[0].annotation(ann.REVISION) == head
    assert pushed["digest"]


def test_yank_and_latest_selection(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    namespace = f"{registry.host}/py"
    repo = f"{namespace}/featurekit"
    push_one(mloci, write_wheel(tmp_path / "1", version="0.1.3"), namespace)
    push_one(mloci, write_wheel(tmp_path / "2", version="0.2.0"), namespace)
    push_one(mloci, write_wheel(tmp_path / "3", version="0.3.0rc1"), namespace)

    def latest() -> str:
        files = run_json(mloci, "wheel", "pull", repo, "-d", tmp_path / "latest")
        return str(files["reference"]).split(":")[-2].split("@")[0]

    assert latest() == "0.2.0"  # final releases before pre-releases
    yanked = run_json(mloci, "wheel", "yank", f"{repo}==0.2.0", "--reason", "wrong ABI")
    assert yanked["yanked"] is True and yanked["reason"] == "wrong ABI"
    assert manifest_of(registry, "py/featurekit", "0.2.0")[1].annotation(YANKED) == "wrong ABI"
    assert run_json(mloci, "wheel", "yank", f"{repo}==0.2.0", "--reason", "wrong ABI")["unchanged"] is True
    assert latest() == "0.1.3"
    pinned = mloci("wheel", "pull", f"{repo}==0.2.0", "-d", tmp_path / "pinned")
    assert pinned.exit_code == 0 and "yanked: wrong ABI" in pinned.stderr
    assert run_json(mloci, "wheel", "yank", f"{repo}==0.2.0", "--undo")["yanked"] is False
    assert manifest_of(registry, "py/featurekit", "0.2.0")[1].annotation(YANKED) is None
    assert latest() == "0.2.0"
    missing = mloci("wheel", "yank", f"{repo}==9.9")
    assert missing.exit_code == 4 and "has no release" in one_line_error(missing.stderr)


def test_a_release_is_signable_like_any_artifact(mloci: Runner, registry: Registry, tmp_path: Path) -> None:
    pushed = push_one(mloci, write_wheel(tmp_path / "dist"), f"{registry.host}/py")
    key, public = generate_keypair(tmp_path / "release", b"passphrase")
    ref = Reference.parse(str(pushed["reference"]))
    signed = sign(ref, key, b"passphrase")
    assert str(signed.digest) == pushed["digest"]
    assert str(verify(ref.with_digest(None), public).digest) == pushed["digest"]  # the tag, resolved
    # The signature tag is not a version: the release list is unaffected.
    store = RegistryStore(registry.host)
    try:
        release = read_release(store, ref.with_tag(None).with_digest(None), "0.1.3")
        assert release is not None and [f.filename for f in release.files] == [
            "featurekit-0.1.3-py3-none-any.whl"
        ]
    finally:
        store.close()


def test_racing_pushes_of_one_version_keep_every_file(registry: Registry, tmp_path: Path) -> None:
    platforms = ["manylinux_2_17_x86_64", "manylinux_2_17_aarch64", "macosx_11_0_arm64", "win_amd64"]
    dists = [
        read_distribution(write_wheel(tmp_path / p, tag=f"cp311-cp311-{p}", value=i))
        for i, p in enumerate(platforms)
    ]
    repo = Reference(registry.host, "py/featurekit")
    store = RegistryStore(registry.host, concurrency=8)
    failures: list[BaseException] = []

    def push(index: int) -> None:
        try:
            publish(store, repo, [dists[index]])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(dists))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        release = read_release(store, repo, "0.1.3")
        assert release is not None
        assert sorted(f.filename for f in release.files) == sorted(d.filename for d in dists)
    finally:
        store.close()


def test_the_local_store_holds_releases_too(mloci: Runner, tmp_path: Path) -> None:
    wheel = write_wheel(tmp_path / "dist")
    pushed = push_one(mloci, wheel, "py")
    assert pushed["reference"].startswith("py/featurekit:0.1.3@sha256:")
    pulled = run_json(mloci, "wheel", "pull", "py/featurekit==0.1.3", "-d", tmp_path / "out")
    assert pulled["digest"] == pushed["digest"]
    assert sha256_of(tmp_path / "out" / wheel.name) == sha256_of(wheel)
