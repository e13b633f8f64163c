"""Streaming extraction of indexed tar layers: the header parser agrees with tarfile's writers."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from mloci.errors import IntegrityError
from mloci.ops._tarextract import extract_indexed

FILES = {
    "a/short.txt": b"hello\n",
    "a/" + "long-" * 30 + ".bin": b"\x00\x01" * 700,  # past ustar's 100-byte name field
    "b/c/naïve-ünïcode.txt": "ü".encode() * 300,  # not ASCII: PAX (or GNU) names
    "b/empty": b"",
    "d/" + "x" * 120 + "/y.txt": b"y" * 513,  # a long directory: ustar's prefix field
}


def tar_bytes(fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8") as tar:
        directory = tarfile.TarInfo("a")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        link = tarfile.TarInfo("a/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../etc/passwd"
        tar.addfile(link)
        for name, data in FILES.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def chunked(data: bytes, size: int = 777) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def extract(data: bytes, root: Path, wanted: list[str]) -> list[str]:
    root.mkdir()
    seen: list[int] = []
    created = extract_indexed(iter(chunked(data)), root, wanted, seen.append, lambda: None)
    assert sum(seen) == len(data)  # the stream is read to its end (the digest check needs it)
    return created


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_every_indexed_file_is_written_from_pax_and_gnu_tars(tmp_path: Path, fmt: int) -> None:
    created = extract(tar_bytes(fmt), tmp_path / "out", list(FILES))
    assert created == sorted(FILES)
    for name, data in FILES.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    assert not (tmp_path / "out" / "a" / "link").exists()


def test_ustar_prefix_names(tmp_path: Path) -> None:
    name = "d/" + "x" * 120 + "/y.txt"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert extract(out.getvalue(), tmp_path / "out", [name]) == [name]
    assert (tmp_path / "out" / name).read_bytes() == b"abc"


def test_unlisted_entries_and_links_are_not_written(tmp_path: Path) -> None:
    created = extract(tar_bytes(tarfile.PAX_FORMAT), tmp_path / "out", ["a/short.txt"])
    assert created == ["a/short.txt"]
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["a", "short.txt"]


def test_a_link_named_in_the_index_is_missing_not_followed(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="lacks 'a/link'"):
        extract(tar_bytes(tarfile.PAX_FORMAT), tmp_path / "out", ["a/link"])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:100] + b"\xff" + d[101:], "checksum"),
        (lambda d: d[:3000], "unexpected end"),
        (lambda d: d[: 512 * 3 + 10], "unexpected end"),
    ],
)
def test_damaged_tars_are_integrity_errors(tmp_path: Path, damage: object, message: str) -> None:
    data = tar_bytes(tarfile.PAX_FORMAT)
    assert callable(damage)
    with pytest.raises(IntegrityError, match=message):
        extract(damage(data), tmp_path / "out", list(FILES))
