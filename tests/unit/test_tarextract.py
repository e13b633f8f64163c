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


def test_a_link_named_in_the_index_is_refused_not_followed(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="'a/link': a symbolic link, not a regular file"):
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


# --- adversarial layers: hand-packed headers where tarfile would not write them ---------------


def header(name: bytes, size: int = 0, typeflag: bytes = b"0", *, size_field: bytes | None = None) -> bytes:
    """One ustar header block with a correct checksum (``size_field`` replaces the encoded size)."""
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = b"0000644\0"
    block[124:136] = size_field if size_field is not None else b"%011o\0" % size
    block[156:157] = typeflag
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def member(name: bytes, data: bytes = b"", typeflag: bytes = b"0") -> bytes:
    return header(name, len(data), typeflag) + data + bytes(-len(data) % 512)


def pax(records: bytes, typeflag: bytes = b"x") -> bytes:
    return member(b"PaxHeader", records, typeflag)


def record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + len(str(len(body)))
    length = len(body) + len(str(length))
    return str(length).encode() + body


END = bytes(1024)


def test_a_tar_without_trouble_extracts(tmp_path: Path) -> None:
    assert extract(member(b"m/a", b"abc") + END, tmp_path / "out", ["m/a"]) == ["m/a"]


@pytest.mark.parametrize(
    "field", [b"-0000001000\0", b"-1000\0", b"00000_1000\0", b"0o00001000\0", b"\xff" * 12]
)
def test_negative_or_odd_sizes_are_refused_not_looped(tmp_path: Path, field: bytes) -> None:
    data = member(b"m/a", b"abc") + header(b"m/b", size_field=field) + member(b"m/c", b"c") + END
    with pytest.raises(IntegrityError, match="corrupt tar layer"):
        extract(data, tmp_path / "out", ["m/a", "m/c"])


def test_a_size_larger_than_the_stream_is_an_integrity_error(tmp_path: Path) -> None:
    huge = b"\x80" + (1 << 80).to_bytes(11, "big")
    with pytest.raises(IntegrityError, match="unexpected end"):
        extract(header(b"m/a", size_field=huge) + b"x" * 100, tmp_path / "out", ["m/a"])


@pytest.mark.parametrize("typeflag", [b"x", b"L", b"K", b"g"])
def test_an_extended_header_claiming_gigabytes_is_not_read_into_memory(
    tmp_path: Path, typeflag: bytes
) -> None:
    claim = header(b"PaxHeader", 1 << 33, typeflag)
    data = claim + b"9" * (3 << 20) + END  # a stream of 3 MiB is there, the header claims 8 GiB
    with pytest.raises(IntegrityError, match="too large"):
        extract(data, tmp_path / "out", ["m/a"])


def test_many_extended_headers_in_a_row_are_bounded_together(tmp_path: Path) -> None:
    one = pax(b"".join(record(f"k{i}", "v" * 900) for i in range(900)))  # about 0.8 MiB each
    data = one * 3 + member(b"m/a", b"a") + END
    with pytest.raises(IntegrityError, match="too large"):
        extract(data, tmp_path / "out", ["m/a"])
    assert extract(
        one + member(b"m/a", b"a") + one + member(b"m/b", b"b") + END, tmp_path / "ok", ["m/a", "m/b"]
    )


def test_pax_path_and_size_override_the_header_for_the_next_entry_only(tmp_path: Path) -> None:
    records = record("path", "m/real") + record("size", "3")
    data = pax(records) + header(b"m/decoy", 700) + b"abc" + bytes(509) + member(b"m/next", b"n") + END
    assert extract(data, tmp_path / "out", ["m/real", "m/next"]) == ["m/next", "m/real"]
    assert (tmp_path / "out" / "m/real").read_bytes() == b"abc"


def test_a_global_pax_header_does_not_rename_entries(tmp_path: Path) -> None:
    data = pax(record("path", "m/evil"), b"g") + member(b"m/a", b"a") + END
    assert extract(data, tmp_path / "out", ["m/a"]) == ["m/a"]


@pytest.mark.parametrize(
    "records",
    [
        b"99 path=m/a\n",  # longer than the header holds
        b"5 path=m/a\n",  # shorter than its own text
        b"x3 path=m/a\n",
        b"12 path m/a\n",  # no '='
        b"\xd9\xa1\xd9\xa2 path=m/a\n",  # Arabic-Indic digits
    ],
)
def test_malformed_pax_records_are_refused(tmp_path: Path, records: bytes) -> None:
    with pytest.raises(IntegrityError, match="PAX"):
        extract(pax(records) + member(b"m/a", b"a") + END, tmp_path / "out", ["m/a"])


@pytest.mark.parametrize("value", ["١٢", "²", "-1", "+3", " 3", ""])
def test_odd_pax_sizes_are_refused(tmp_path: Path, value: str) -> None:
    data = pax(record("size", value)) + member(b"m/a", b"abc") + END
    with pytest.raises(IntegrityError, match="PAX size"):
        extract(data, tmp_path / "out", ["m/a"])


def test_a_pax_path_with_a_nul_names_no_listed_file(tmp_path: Path) -> None:
    data = pax(record("path", "m/a\0/../../x")) + member(b"m/b", b"a") + END
    with pytest.raises(IntegrityError, match="lacks 'm/a'"):
        extract(data, tmp_path / "out", ["m/a"])
    assert not (tmp_path / "x").exists()


def test_gnu_long_names(tmp_path: Path) -> None:
    name = "m/" + "d" * 150 + "/" + "n" * 150
    data = member(b"././@LongLink", name.encode() + b"\0", b"L") + member(b"m/short", b"abc") + END
    assert extract(data, tmp_path / "out", [name]) == [name]


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        (member(b"m/a", typeflag=b"2")[:157] + b"/etc/passwd", "symbolic link"),
        (member(b"m/a", typeflag=b"1"), "hard link"),
        (member(b"m/a", typeflag=b"3"), "device"),
        (member(b"m/a", typeflag=b"6"), "FIFO"),
        (member(b"m/a", typeflag=b"5"), "directory"),
        (member(b"m/a", b"abc", typeflag=b"Z"), "type 'Z'"),
    ],
)
def test_a_listed_name_that_is_not_a_regular_file_is_refused(tmp_path: Path, entry: bytes, kind: str) -> None:
    if kind == "symbolic link":  # fix the checksum after writing the link name
        entry = header(b"m/a", 0, b"2")
    with pytest.raises(IntegrityError, match=f"'m/a'.*{kind}"):
        extract(entry + END, tmp_path / "out", ["m/a"])


def test_sparse_entries_are_refused(tmp_path: Path) -> None:
    data = member(b"m/s", b"abc", typeflag=b"S") + member(b"m/a", b"a") + END
    with pytest.raises(IntegrityError, match="sparse"):
        extract(data, tmp_path / "out", ["m/a"])
    gnu = pax(record("GNU.sparse.major", "1") + record("GNU.sparse.name", "m/a")) + member(b"m/x", b"a")
    with pytest.raises(IntegrityError, match="sparse"):
        extract(gnu + END, tmp_path / "out2", ["m/a"])


def test_the_same_listed_path_twice_is_refused(tmp_path: Path) -> None:
    data = member(b"m/a", b"first") + member(b"./m/a", b"second") + END
    with pytest.raises(IntegrityError, match="'m/a' twice"):
        extract(data, tmp_path / "out", ["m/a"])


def test_a_file_under_a_listed_file_is_an_integrity_error(tmp_path: Path) -> None:
    data = member(b"m/a", b"file") + member(b"m/a/b", b"under") + END
    with pytest.raises(IntegrityError, match="'m/a/b'"):
        extract(data, tmp_path / "out", ["m/a", "m/a/b"])
    data = member(b"m/a/b", b"under") + member(b"m/a", b"file") + END
    with pytest.raises(IntegrityError, match="'m/a'"):
        extract(data, tmp_path / "out2", ["m/a", "m/a/b"])


def test_no_writing_through_a_symlink_already_in_the_staging_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "out"
    root.mkdir()
    (root / "m").symlink_to(outside)  # as another layer's extraction could leave
    (root / "f").symlink_to(outside / "f")
    for name in ("m/a", "m/sub/a", "f"):
        chunks = iter([member(name.encode(), b"x") + END])
        with pytest.raises(IntegrityError, match=repr(name)):
            extract_indexed(chunks, root, [name], lambda n: None, lambda: None)
    assert list(outside.iterdir()) == []


def test_checksum_mismatch_names_the_entry(tmp_path: Path) -> None:
    entry = bytearray(member(b"m/a", b"abc"))
    entry[148:156] = b"0000001\0"
    with pytest.raises(IntegrityError, match=r"checksum.*'m/a'"):
        extract(bytes(entry) + END, tmp_path / "out", ["m/a"])


def test_truncated_data_leaves_an_integrity_error(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="unexpected end"):
        extract(header(b"m/a", 5000) + b"x" * 1000, tmp_path / "out", ["m/a"])


def test_trailing_garbage_after_the_end_blocks_is_read_not_parsed(tmp_path: Path) -> None:
    data = member(b"m/a", b"abc") + END + b"garbage" * 100
    assert extract(data, tmp_path / "out", ["m/a"]) == ["m/a"]


def test_control_characters_in_tar_names_never_match(tmp_path: Path) -> None:
    data = member(b"m/a\n", b"abc") + END
    with pytest.raises(IntegrityError, match="lacks"):
        extract(data, tmp_path / "out", ["m/a"])
