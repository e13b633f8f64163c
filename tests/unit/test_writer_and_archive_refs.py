"""The background writer pulls use, and oci-archive: reference parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mloci.errors import UsageError
from mloci.ops._writer import BackgroundWriter
from mloci.ops.refs import parse_reference
from mloci.store.archive import ANY_REPOSITORY, ArchiveReference


def test_background_writer_writes_everything_in_order(tmp_path: Path) -> None:
    target = tmp_path / "out"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)
    chunks = [bytes([i]) * (1000 + i) for i in range(200)]
    with BackgroundWriter(fd, depth=2) as writer:
        for chunk in chunks:
            writer.write(chunk)
    os.close(fd)
    assert target.read_bytes() == b"".join(chunks)


def test_background_writer_reports_a_failed_write(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "ro", os.O_RDONLY | os.O_CREAT, 0o644)  # writes fail with EBADF
    with pytest.raises(OSError), BackgroundWriter(fd, depth=1) as writer:
        for _ in range(50):
            writer.write(b"x" * 4096)
    os.close(fd)


def test_background_writer_abandons_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)
    with pytest.raises(RuntimeError), BackgroundWriter(fd) as writer:
        writer.write(b"a" * 10)
        raise RuntimeError("producer failed")
    os.close(fd)


@pytest.mark.parametrize(
    ("text", "path", "repository", "tag", "digest"),
    [
        ("oci-archive:models.tar", "models.tar", ANY_REPOSITORY, None, None),
        ("oci-archive:/a/b.tar:1.5.0", "/a/b.tar", ANY_REPOSITORY, "1.5.0", None),
        ("oci-archive:b.tar:ml/churn-model:1.5.0", "b.tar", "ml/churn-model", "1.5.0", None),
        ("oci-archive:b.tar@sha256:" + "a" * 64, "b.tar", ANY_REPOSITORY, None, "sha256:" + "a" * 64),
    ],
)
def test_archive_references(
    text: str, path: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert isinstance(ref, ArchiveReference)
    assert (str(ref.archive), ref.repository, ref.tag, str(ref.digest) if ref.digest else None) == (
        path,
        repository,
        tag,
        digest,
    )
    assert str(ref) == text
    assert str(ref.with_tag("2.0.0")).startswith(f"oci-archive:{path}:")


@pytest.mark.parametrize("text", ["oci-archive:", "oci-archive:x.tar:Bad Tag", "oci-archive:x.tar:UP/x:1"])
def test_bad_archive_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_reference(text)
