"""Fuzzing every parser that reads outside input (issue 10).

The property is the same everywhere: any input yields a result or an :class:`MlociError` — never
another exception, never a hang (each example has a deadline), never a write outside the target.
Examples are bounded so the whole file runs in well under 30 seconds; hypothesis keeps what it
finds in ``.hypothesis/`` and replays it first next time.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloci.bundle.checksums import read_checksums
from mloci.bundle.jsondoc import JsonProblem, parse_json
from mloci.bundle.load import inspect_bundle
from mloci.bundle.manifest import BundleManifest
from mloci.errors import AuthError, IntegrityError, MlociError, UsageError
from mloci.ops._tarextract import extract_indexed
from mloci.ops.policy import load_policy
from mloci.ops.pull import _check_target, _owned_files, _untar, layers_of, safe_path
from mloci.python.filenames import parse_filename, version_of_tag
from mloci.python.metadata import parse_core_metadata, read_sdist_metadata, read_wheel_metadata
from mloci.store.layout import LayoutStore
from mloci.store.registry import credentials
from mloci.store.registry.auth import Authenticator, Challenge, Credentials
from mloci.trust.bundle import Bundle as SigstoreBundle
from mloci.trust.dsse import Envelope
from mloci.types import Digest, Index, Manifest, Reference

T = TypeVar("T")

# MLOCI_FUZZ_EXAMPLES=5000 for a deeper run by hand; CI keeps the default bounded.
FUZZ = settings(
    max_examples=int(os.environ.get("MLOCI_FUZZ_EXAMPLES", "100")),
    deadline=5000,  # ms per example: a hang is a failure (generous: CI machines are shared)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FEW = settings(FUZZ, max_examples=max(FUZZ.max_examples * 2 // 5, 1))


def result_or_mloci_error(call: Callable[[], T]) -> T | MlociError:
    try:
        return call()
    except MlociError as exc:
        assert str(exc), "an MlociError must say what is wrong"
        return exc


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mloci-fuzz-") as name:
        yield Path(name)


# --- references and digests ------------------------------------------------------------------------

_REF_PIECES = st.sampled_from(
    ["", "/", ":", "@", ".", "-", "_", "__", "a", "Z", "0", "localhost", "127.0.0.1:5000", "[::1]:5000",
     "sha256:", "sha512:", "a" * 64, "f" * 128, "latest", ":99999", "..", " ", "\n", "é", "\x00"]
)  # fmt: skip
reference_texts = st.one_of(st.text(max_size=300), st.lists(_REF_PIECES, max_size=12).map("".join))


@FUZZ
@given(text=reference_texts, default=st.one_of(st.none(), reference_texts))
def test_reference_parse(text: str, default: str | None) -> None:
    ref = result_or_mloci_error(lambda: Reference.parse(text, default_registry=default))
    if isinstance(ref, Reference):
        # What parses prints back to something that parses to the same value.
        assert Reference.parse(str(ref)) == ref


@FUZZ
@given(text=reference_texts)
def test_digest_parse(text: str) -> None:
    digest = result_or_mloci_error(lambda: Digest.parse(text))
    if isinstance(digest, Digest):
        assert Digest.parse(str(digest)) == digest


# --- manifests and indexes ---------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_DESCRIPTOR_KEYS = ["mediaType", "digest", "size", "annotations", "urls", "platform", "artifactType", "data"]
_MANIFEST_KEYS = ["schemaVersion", "mediaType", "artifactType", "config", "layers", "manifests", "subject", "annotations"]  # fmt: skip
descriptors = st.dictionaries(
    st.sampled_from(_DESCRIPTOR_KEYS), json_values, max_size=8
) | st.fixed_dictionaries(
    {
        "mediaType": st.text(max_size=40),
        "digest": st.sampled_from(["sha256:" + "a" * 64, "sha512:" + "b" * 128, "md5:x"]),
        "size": st.integers(),
        "annotations": st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=3),
    }
)
manifest_documents = st.dictionaries(
    st.sampled_from(_MANIFEST_KEYS),
    st.one_of(json_values, descriptors, st.lists(descriptors, max_size=3)),
    max_size=8,
)
manifest_bytes = st.one_of(
    st.binary(max_size=200),
    manifest_documents.map(lambda d: json.dumps(d).encode()),
    st.integers(1, 100_000).map(lambda n: b"[" * n),
    st.integers(1, 100_000).map(lambda n: b'{"layers":' * n),
)


@FUZZ
@given(data=manifest_bytes)
def test_manifest_and_index_from_json(data: bytes) -> None:
    manifest = result_or_mloci_error(lambda: Manifest.from_json(data))
    result_or_mloci_error(lambda: Index.from_json(data))
    if isinstance(manifest, Manifest):
        # The paths a pull would write are checked, never trusted.
        result_or_mloci_error(lambda: layers_of(manifest))


# --- bundle manifests ----------------------------------------------------------------------------------

_BUNDLE_KEYS = [*BundleManifest.model_fields, "$schema", "framwork", "metrics", "extensions"]
bundle_documents = st.dictionaries(
    st.sampled_from(_BUNDLE_KEYS) | st.text(max_size=10),
    st.one_of(json_values, st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
    max_size=10,
).map(lambda d: {"name": "m", "version": "1.0.0", **d})
bundle_bytes = st.one_of(
    st.binary(max_size=200),
    bundle_documents.map(lambda d: json.dumps(d).encode()),
    st.integers(1, 100_000).map(lambda n: b'{"extensions":' * n),
    json_values.map(lambda v: json.dumps(v).encode()),
)


@FUZZ
@given(data=bundle_bytes)
def test_bundle_manifest_parsing(data: bytes) -> None:
    try:
        parse_json(data, "manifest.json")
    except JsonProblem as exc:
        assert exc.problem.message


@FEW
@given(data=bundle_bytes, checksums=st.binary(max_size=300))
def test_bundle_loading(data: bytes, checksums: bytes) -> None:
    with scratch() as root:
        (root / "manifest.json").write_bytes(data)
        (root / "model.onnx").write_bytes(b"weights")
        (root / "sha256.txt").write_bytes(checksums)
        bundle, problems = inspect_bundle(root)
        assert (bundle is None) == bool(problems)
        assert all(p.message for p in problems)
        read_checksums(root)


# --- tar layers ------------------------------------------------------------------------------------------

_NAME_PARTS = st.sampled_from(
    ["", ".", "..", "/", "a", "b", "c.bin", ".mloci", "\\", "~", "é", "\n", "\x1b", "//"]
)
tar_names = st.one_of(st.text(max_size=30), st.lists(_NAME_PARTS, min_size=1, max_size=6).map("/".join))
_TYPES = [
    tarfile.REGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.CHRTYPE,
    tarfile.FIFOTYPE,
]
tar_members = st.lists(
    st.tuples(tar_names, st.sampled_from(_TYPES), tar_names, st.integers(0, 0o7777)), min_size=1, max_size=6
)


def tar_of(members: list[tuple[str, bytes, str, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, link, mode in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            info.mode = mode
            payload = b"payload" if kind == tarfile.REGTYPE else b""
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def outside(root: Path, target: Path) -> set[str]:
    """Every path under ``root`` that is not ``target`` or below it."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p != target and not p.is_relative_to(target)}


@FUZZ
@given(members=tar_members, garbage=st.binary(max_size=64), compress=st.booleans())
def test_tar_layers_stay_inside_their_target(
    members: list[tuple[str, bytes, str, int]], garbage: bytes, compress: bool
) -> None:
    try:
        data = tar_of(members)
    except (ValueError, UnicodeError):
        data = garbage  # a name the tar format cannot hold: fuzz the reader with bytes instead
    if compress:
        data = gzip.compress(data)
    with scratch() as root:
        staging = root / "target" / "staging"
        staging.mkdir(parents=True)
        (root / "outside").mkdir()
        archive = root / "layer.tar"
        archive.write_bytes(data)
        before = outside(root, staging)
        created = result_or_mloci_error(lambda: _untar(archive, staging))
        assert outside(root, staging) == before, "nothing may appear outside the target"
        for path in staging.rglob("*"):
            if path.is_symlink():
                real = Path(os.path.realpath(path))  # not Path.resolve(): a link to itself is harmless here
                assert real.is_relative_to(os.path.realpath(staging)), f"{path} links out of the target"
        if isinstance(created, list):
            for name in created:
                assert Path(os.path.realpath(staging / name)).is_relative_to(os.path.realpath(staging))


_LINK_NAMES = st.lists(st.sampled_from(["a", "b", "d", "..", "."]), min_size=1, max_size=3).map("/".join)
layer_members = st.lists(
    st.tuples(
        _LINK_NAMES,
        st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]),
        _LINK_NAMES,
        st.just(0o644),
    ),
    min_size=1,
    max_size=6,
)


@FUZZ
@given(layers=st.lists(layer_members, min_size=1, max_size=3))
def test_tar_layers_in_one_staging_never_pass_through_a_link(
    layers: list[list[tuple[str, bytes, str, int]]],
) -> None:
    """Layers unpacked one after another into one directory: every file they report sits under real
    directories, and every link they leave points to a regular file inside it."""
    with scratch() as root:
        staging = root / "staging"
        staging.mkdir()
        created: list[str] = []
        for index, members in enumerate(layers):
            (root / f"{index}.tar").write_bytes(tar_of(members))
            result = result_or_mloci_error(lambda i=index: _untar(root / f"{i}.tar", staging))
            if isinstance(result, list):
                created += result
        assert outside(root, staging) == {f"{i}.tar" for i in range(len(layers))}
        for name in created:
            parent = staging
            for part in name.split("/")[:-1]:
                parent = parent / part
                assert parent.is_dir() and not parent.is_symlink(), f"{name} passes through {parent}"
        for path in staging.rglob("*"):
            if path.is_symlink():
                assert path.resolve().is_file(), f"{path} is kept but does not point to a file"
                assert path.resolve().is_relative_to(staging.resolve())


@FUZZ
@given(
    members=tar_members,
    flips=st.lists(st.tuples(st.integers(0, 4096), st.sampled_from(b"\0 -+_0179x\x80\xff=\n/.")), max_size=6),
    cut=st.integers(0, 1 << 16),
    chunk=st.integers(1, 2000),
    resum=st.booleans(),
)
def test_the_streaming_tar_extractor_writes_only_listed_files_inside_the_target(
    members: list[tuple[str, bytes, str, int]],
    flips: list[tuple[int, int]],
    cut: int,
    chunk: int,
    resum: bool,
) -> None:
    try:
        data = bytearray(tar_of(members))
    except (ValueError, UnicodeError):
        return
    for position, value in flips:  # damaged headers, sizes, PAX records
        if position < len(data):
            data[position] = value
    for start in range(0, len(data) - 511, 512) if resum else ():  # damage the checksum cannot catch
        if data[start + 257 : start + 262] == b"ustar":
            data[start + 148 : start + 156] = b"%06o\0 " % (
                sum(data[start : start + 148]) + 256 + sum(data[start + 156 : start + 512])
            )
    data = data[: len(data) - cut % (len(data) + 1)] if cut % 3 == 0 else data
    wanted = [n for n, *_ in members if n and not n.startswith("/") and ".." not in n.split("/")]
    wanted = [
        n for n in wanted if not isinstance(result_or_mloci_error(lambda n=n: safe_path(n)), MlociError)
    ]
    with scratch() as root:
        staging = root / "target" / "staging"
        staging.mkdir(parents=True)
        before = outside(root, staging)
        chunks = iter([bytes(data[i : i + chunk]) for i in range(0, len(data), chunk)])
        created = result_or_mloci_error(
            lambda: extract_indexed(chunks, staging, wanted, lambda n: None, lambda: None)
        )
        assert outside(root, staging) == before, "nothing may appear outside the target"
        assert not any(p.is_symlink() for p in staging.rglob("*"))
        files = {str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()}
        assert files <= set(wanted)
        if isinstance(created, list):
            assert set(created) == set(wanted) == files


# --- registry authentication ----------------------------------------------------------------------------

challenges = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.sampled_from(['Bearer ', 'Basic ', 'realm="https://auth/token"', "realm=", 'service="r"', ",",
                         'scope="repository:a:pull"', '"', "\\", "=", " ", "error=insufficient_scope", "\x00"]),
        max_size=12,
    ).map("".join),
)  # fmt: skip
token_bodies = st.one_of(
    st.binary(max_size=100),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["token", "access_token", "expires_in", "issued_at"]),
        st.one_of(json_values, st.text(max_size=40)),
    ).map(lambda v: json.dumps(v).encode()),
    st.integers(1, 100_000).map(lambda n: b"[" * n),
)


@FUZZ
@given(
    header=st.just('Bearer realm="https://auth/token",service="r"') | challenges,
    status=st.sampled_from([200, 200, 401, 403, 500]),
    body=token_bodies,
)
def test_www_authenticate_and_token_responses(header: str, status: int, body: bytes) -> None:
    Challenge.parse(header)
    auth = Authenticator(Credentials(username="u", password="p"))

    def fetch(url: str, headers: dict[str, str], form: str | None) -> tuple[int, bytes]:
        return status, body

    def use() -> str | None:
        auth.learn(header)
        value = auth.header("repository:a:pull", fetch)
        if value is not None:
            # What goes into an HTTP header must be one line of visible ASCII.
            assert value.isascii() and value.isprintable(), repr(value)
        return value

    result_or_mloci_error(use)


# --- docker config files ---------------------------------------------------------------------------------

config_documents = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "auths": st.one_of(
                json_values,
                st.dictionaries(
                    st.sampled_from(["r.example", "https://r.example", "other"]),
                    st.one_of(
                        json_values,
                        st.dictionaries(
                            st.sampled_from(["auth", "identitytoken", "username", "password"]),
                            st.one_of(
                                json_values,
                                st.text(max_size=20),
                                st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()),
                            ),
                        ),
                    ),
                ),
            ),
            "credHelpers": st.one_of(json_values, st.dictionaries(st.just("r.example"), json_values)),
            "credsStore": json_values,
        },
    ),
)


@FUZZ
@given(document=config_documents, raw=st.one_of(st.none(), st.binary(max_size=100)))
def test_docker_config_files(document: Any, raw: bytes | None, monkeypatch: pytest.MonkeyPatch) -> None:
    with scratch() as root:
        (root / "config.json").write_bytes(raw if raw is not None else json.dumps(document).encode())
        monkeypatch.setenv("DOCKER_CONFIG", str(root))
        monkeypatch.setenv("PATH", str(root))  # no credential helper can run
        monkeypatch.delenv("MLOCI_USERNAME", raising=False)
        found = result_or_mloci_error(lambda: credentials.lookup("r.example"))
        assert found is None or isinstance(found, Credentials | MlociError)
        before = (root / "config.json").read_bytes()
        stored = result_or_mloci_error(lambda: credentials.store("r.example", Credentials("u", "p")))
        if isinstance(stored, MlociError):
            assert (root / "config.json").read_bytes() == before, "a refused login must not touch the file"
        result_or_mloci_error(lambda: credentials.remove("r.example"))


# --- Python distributions --------------------------------------------------------------------------------

filenames = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(["pkg", "-", "1.0", "_", ".", "py3", "none", "any", ".whl", ".tar.gz", "!", "+",
                              "é", "1!2", "x" * 100]), max_size=10).map("".join),
)  # fmt: skip


@FUZZ
@given(name=filenames)
def test_wheel_and_sdist_filenames(name: str) -> None:
    result_or_mloci_error(lambda: parse_filename(name))
    version_of_tag(name)


metadata_texts = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from(["Metadata-Version: 2.1\n", "Name: pkg\n", "Version: 1.0\n", "Version: nope\n",
                         "Requires-Python: >=3.8\n", "Requires-Python: ==garbage\n", "Summary: x\n",
                         "\n", "Description\n", ":\n", "Name\n", "\xff\n", "License-Expression: MIT\n"]),
        max_size=10,
    ).map(lambda lines: "".join(lines).encode("utf-8", "surrogateescape")),
)  # fmt: skip


@FUZZ
@given(data=metadata_texts)
def test_core_metadata(data: bytes) -> None:
    result_or_mloci_error(lambda: parse_core_metadata(data, "pkg-1.0.whl"))


@FEW
@given(
    entries=st.lists(st.tuples(tar_names, st.binary(max_size=40)), max_size=5), garbage=st.binary(max_size=80)
)
def test_wheel_and_sdist_archives(entries: list[tuple[str, bytes]], garbage: bytes) -> None:
    for data in (garbage, _zip_of(entries), _tgz_of(entries)):
        result_or_mloci_error(
            lambda data=data: read_wheel_metadata(io.BytesIO(data), "pkg-1.0-py3-none-any.whl")
        )
        result_or_mloci_error(lambda data=data: read_sdist_metadata(io.BytesIO(data), "pkg-1.0.tar.gz"))


def _zip_of(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        names = {name.replace("\x00", "") or "x": data for name, data in entries}
        for name, data in {"pkg-1.0.dist-info/WHEEL": b"x", **names}.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tgz_of(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in [("pkg-1.0/PKG-INFO", b"Metadata-Version: 2.1\n"), *entries]:
            info = tarfile.TarInfo(name.replace("\x00", "") or "x")
            info.size = len(data)
            try:
                archive.addfile(info, io.BytesIO(data))
            except (ValueError, UnicodeError):
                continue
    return buffer.getvalue()


# --- policy files ------------------------------------------------------------------------------------------

policy_texts = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.lists(
        st.sampled_from(["signatures: {keys: [k.pub], minimum: 1}\n", "require: [sbom]\n", "metrics: ['auc >= 0.8']\n",
                         "fields: [git_sha]\n", "licenses: [MIT]\n", "max_age: 30d\n", "max_age: 2020-01-01\n",
                         "1: 2\n", "? [a]\n: b\n", "- x\n", "&a [*a]\n", "!!python/object:os.system x\n",
                         "metrics: &m [*m]\n", "{", "[", "\t", "\xff"]),
        max_size=8,
    ).map(lambda lines: "".join(lines).encode("utf-8", "surrogateescape")),
    st.integers(1, 20_000).map(lambda n: b"[" * n),
    st.just(b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
            b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
            b"metrics: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"),
)  # fmt: skip


@FUZZ
@given(data=policy_texts)
def test_policy_files(data: bytes) -> None:
    with scratch() as root:
        path = root / "policy.yaml"
        path.write_bytes(data)
        result_or_mloci_error(lambda: load_policy(path))


def test_the_fuzzers_reach_real_results() -> None:
    """A sanity check that the strategies are not all rejected: valid inputs parse."""
    assert Reference.parse("r.example/a/b:1@sha256:" + "a" * 64).tag == "1"
    assert parse_filename("pkg-1.0-py3-none-any.whl").project == "pkg"
    with scratch() as root:
        (root / "policy.yaml").write_text("metrics: ['auc >= 0.8']\n")
        assert load_policy(root / "policy.yaml")[0].metrics == ["auc >= 0.8"]
    assert os.sep == "/"


# --- what the fuzzers found, pinned as plain regression tests ---------------------------------------------


def tar_with(*members: tuple[str, bytes, str]) -> bytes:
    return tar_of([(name, kind, link, 0o644) for name, kind, link in members])


@pytest.mark.parametrize(
    "members",
    [
        [("", tarfile.REGTYPE, "")],  # was IsADirectoryError: a file named like the target itself
        [("./", tarfile.REGTYPE, "")],
        [("a", tarfile.LNKTYPE, "missing")],  # was KeyError: hard link to an entry the tar lacks
        [("a", tarfile.REGTYPE, ""), ("a/b", tarfile.REGTYPE, "")],  # was NotADirectoryError
        [("\x00\x80", tarfile.DIRTYPE, "")],  # was ValueError: embedded null byte
        [("d\x1b[2J", tarfile.DIRTYPE, "")],  # directories are checked like files
        [("0", tarfile.SYMTYPE, "0"), ("0", tarfile.REGTYPE, "")],  # was OSError ELOOP: one entry twice
        [
            ("a", tarfile.SYMTYPE, "b"),
            ("b", tarfile.SYMTYPE, "a"),
            ("a/x", tarfile.REGTYPE, ""),
        ],  # a link loop
        [("0", tarfile.LNKTYPE, "\x00\x80")],  # was ValueError: embedded null byte (found by the fuzzer)
    ],
)
def test_malformed_tar_layers_are_integrity_errors(members: list[tuple[str, bytes, str]]) -> None:
    with scratch() as root:
        (root / "staging").mkdir()
        (root / "layer.tar").write_bytes(tar_with(*members))
        with pytest.raises(IntegrityError):
            _untar(root / "layer.tar", root / "staging")


@pytest.mark.parametrize(
    ("default", "message"),
    [
        ("not a registry", "invalid registry host 'not a registry'"),
        ("127.0.0.1:99999", "invalid port 99999"),
        ("myregistry", "would be read as a repository name"),  # printed refs would not parse back
        ("r.example/Team", "invalid namespace 'Team'"),
    ],
)
def test_invalid_default_registry_is_a_usage_error(default: str, message: str) -> None:
    with pytest.raises(UsageError, match="MLOCI_REGISTRY") as info:
        Reference.parse("model", default_registry=default)
    assert message in str(info.value)
    with pytest.raises(UsageError, match="invalid port"):
        Reference.parse("127.0.0.1:99999/model")


@pytest.mark.parametrize(
    "config",
    [
        b'{"credHelpers": true}',  # was TypeError
        b'{"auths": ["r.example"]}',
        b'{"credsStore": "../../bin/sh"}',  # a helper name is a word, never a path
        b"[1, 2]",  # was read as empty, and a login then overwrote the file
        b"[" * 100_000,  # was RecursionError
    ],
)
def test_malformed_docker_config_is_an_auth_error_and_is_never_overwritten(
    config: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scratch() as root:
        (root / "config.json").write_bytes(config)
        monkeypatch.setenv("DOCKER_CONFIG", str(root))
        monkeypatch.delenv("MLOCI_USERNAME", raising=False)
        with pytest.raises(AuthError):
            credentials.lookup("r.example")
        with pytest.raises(AuthError):
            credentials.store("r.example", Credentials("u", "p"))
        assert (root / "config.json").read_bytes() == config


@pytest.mark.parametrize(
    "body",
    [
        b'{"token": "abc\\r\\nX-Injected: 1"}',  # was sent as a header
        b'{"token": "t\\u00e9"}',  # was UnicodeEncodeError inside http.client
        b"[" * 100_000,  # was RecursionError
    ],
)
def test_malformed_tokens_are_auth_errors(body: bytes) -> None:
    auth = Authenticator(Credentials("u", "p"))
    auth.learn('Bearer realm="https://auth.example/token",service="r"')
    with pytest.raises(AuthError):
        auth.header("repository:a:pull", lambda url, headers, form: (200, body))


BILLION_LAUGHS = b"".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n".encode()
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "data",
    [
        b"metrics: ['\xff']\n",  # was UnicodeDecodeError
        b"[" * 2013,  # was RecursionError after seconds of parsing
        b"a: &a [x, x, x, x, x, x, x, x, x]\n" + BILLION_LAUGHS,  # a guard: 9^9 values through aliases
    ],
)
def test_malformed_policies_are_usage_errors_quickly(data: bytes) -> None:
    with scratch() as root:
        (root / "policy.yaml").write_bytes(data)
        started = time.monotonic()
        with pytest.raises(UsageError):
            load_policy(root / "policy.yaml")
        assert time.monotonic() - started < 5


# --- more outside input: DSSE envelopes, pull markers, the local store's index.json -------------------------


@FUZZ
@given(data=token_bodies)
def test_dsse_envelopes(data: bytes) -> None:
    """An envelope or sigstore bundle from a registry parses, or is a ValueError (the documented contract)."""
    with contextlib.suppress(ValueError):
        Envelope.from_json(data)
    with contextlib.suppress(ValueError):
        SigstoreBundle.from_json(data)


@FEW
@given(marker=st.one_of(st.binary(max_size=200), config_documents.map(lambda d: json.dumps(d).encode()),
                        st.dictionaries(st.sampled_from(["digest", "files", "layers", "reference"]),
                                        st.one_of(json_values, st.lists(tar_names, max_size=4))).map(
                            lambda d: json.dumps(d).encode()),
                        st.integers(1, 100_000).map(lambda n: b"[" * n)))  # fmt: skip
def test_pull_markers_written_by_hand_or_by_anyone(marker: bytes) -> None:
    """``.mloci/pull.json`` is read before a pull decides what to replace: whatever it holds, only safe
    paths are ever owned, and checking the target raises nothing but an MlociError."""
    with scratch() as root:
        (root / ".mloci").mkdir()
        (root / ".mloci" / "pull.json").write_bytes(marker)
        (root / "keep.txt").write_text("mine")
        for path in _owned_files(root):
            assert safe_path(path) == path
        result_or_mloci_error(lambda: _check_target(root, {"model.onnx"}, force=True))
        assert (root / "keep.txt").read_text() == "mine"


@FEW
@given(index=st.one_of(st.binary(max_size=200), manifest_documents.map(lambda d: json.dumps(d).encode()),
                       st.integers(1, 100_000).map(lambda n: b'{"manifests":' * n)))  # fmt: skip
def test_local_store_index_json(index: bytes) -> None:
    """A damaged ``index.json`` in ``$MLOCI_HOME/oci`` is an MlociError naming it, for every read."""
    with scratch() as root:
        store = LayoutStore(root)
        (root / "oci").mkdir(exist_ok=True)
        (store.root / "index.json").write_bytes(index)
        (store.root / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
        result_or_mloci_error(lambda: store.list_tags("model"))
        result_or_mloci_error(lambda: store.resolve(Reference(None, "model", tag="1")))
