"""Streaming extraction of indexed tar layers: the header parser agrees with tarfile's writers."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from mloci.errors import IntegrityError
from mloci.ops._tarextract import extract_all, extract_indexed, make_parents
from mloci.ops.pull import _untar, safe_path

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


def extract_layer(data: bytes, root: Path, check: object = None) -> list[str]:
    """A whole (unindexed) tar layer into ``root``, made if missing."""
    root.mkdir(exist_ok=True)
    return extract_all(iter(chunked(data)), root, safe_path, check if callable(check) else lambda: None)


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


@pytest.mark.parametrize("value", ["١٢", "²", "-1", "+3", " 3", "3 ", "0x3"])
def test_odd_pax_sizes_are_refused(tmp_path: Path, value: str) -> None:
    data = pax(record("size", value)) + member(b"m/a", b"abc") + END
    with pytest.raises(IntegrityError, match="PAX size"):
        extract(data, tmp_path / "out", ["m/a"])


def test_an_empty_pax_value_deletes_the_record_so_the_ustar_field_applies(tmp_path: Path) -> None:
    """POSIX pax: a record whose value is empty deletes that field; the ustar header's own field counts."""
    data = pax(record("size", "") + record("path", "")) + member(b"m/a", b"abc") + member(b"m/b", b"b") + END
    assert extract(data, tmp_path / "out", ["m/a", "m/b"]) == ["m/a", "m/b"]
    assert (tmp_path / "out" / "m/a").read_bytes() == b"abc"


def test_an_empty_pax_value_deletes_an_earlier_record_of_the_same_header(tmp_path: Path) -> None:
    records = record("path", "m/renamed") + record("size", "1") + record("path", "") + record("size", "")
    data = pax(records) + member(b"m/a", b"abc") + END
    assert extract(data, tmp_path / "out", ["m/a"]) == ["m/a"]
    assert (tmp_path / "out" / "m/a").read_bytes() == b"abc"


def test_an_empty_pax_linkpath_falls_back_to_the_header_link_name(tmp_path: Path) -> None:
    link = bytearray(header(b"m/l", 0, b"2"))
    link[157:160] = b"a.t"
    link[148:156] = b" " * 8
    link[148:156] = b"%06o\0 " % sum(link)
    data = member(b"m/a.t", b"abc") + pax(record("linkpath", "")) + bytes(link) + END
    assert extract_layer(data, tmp_path / "out") == ["m/a.t", "m/l"]
    assert (tmp_path / "out" / "m" / "l").readlink() == Path("a.t")


@pytest.mark.parametrize("records", [b"8 =abc\n", b"7 size=", b"6 size\n"])
def test_pax_records_without_a_keyword_or_newline_stay_refused(tmp_path: Path, records: bytes) -> None:
    with pytest.raises(IntegrityError, match="PAX"):
        extract(pax(records) + member(b"m/a", b"a") + END, tmp_path / "out", ["m/a"])


def test_an_empty_gnu_sparse_record_is_deleted_not_sparse(tmp_path: Path) -> None:
    data = pax(record("GNU.sparse.major", "")) + member(b"m/a", b"abc") + END
    assert extract(data, tmp_path / "out", ["m/a"]) == ["m/a"]


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


# --- whole tar layers (no file index): links, hard links, races ------------------------------------------


def link_entry(name: bytes, target: bytes, typeflag: bytes = b"2") -> bytes:
    block = bytearray(header(name, 0, typeflag))
    block[157 : 157 + len(target)] = target
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def directory(name: bytes) -> bytes:
    return header(name, 0, b"5")


def test_a_whole_layer_keeps_directories_files_and_the_executable_bit(tmp_path: Path) -> None:
    run = bytearray(header(b"w/run.sh", 2))
    run[100:108] = b"0000755\0"
    run[148:156] = b" " * 8
    run[148:156] = b"%06o\0 " % sum(run)
    data = directory(b"./w/") + directory(b"w/empty/") + member(b"./w/a", b"abc") + bytes(run) + b"ok"
    data += bytes(510) + END
    assert extract_layer(data, tmp_path / "out") == ["w/a", "w/run.sh"]
    assert (tmp_path / "out" / "w" / "empty").is_dir()
    assert (tmp_path / "out" / "w" / "run.sh").stat().st_mode & 0o100
    assert not (tmp_path / "out" / "w" / "a").stat().st_mode & 0o111


def test_a_symlink_to_a_file_of_the_same_layer_is_kept(tmp_path: Path) -> None:
    data = link_entry(b"w/current", b"v2/model.bin") + member(b"w/v2/model.bin", b"weights")
    data += link_entry(b"w/v2/up", b"../top.txt") + member(b"w/top.txt", b"t") + END
    assert extract_layer(data, tmp_path / "out") == ["w/current", "w/top.txt", "w/v2/model.bin", "w/v2/up"]
    assert (tmp_path / "out" / "w" / "current").readlink() == Path("v2/model.bin")
    assert (tmp_path / "out" / "w" / "current").read_bytes() == b"weights"
    assert (tmp_path / "out" / "w" / "v2" / "up").read_text() == "t"


@pytest.mark.parametrize(
    "target",
    [b"tokenizer", b"/etc/passwd", b"../../outside", b"missing", b"./a", b"sub/../a", b"a/", b""],
    ids=["directory", "absolute", "outside", "dangling", "dot", "dotdot-inside", "slash", "empty"],
)
def test_other_symlinks_are_refused_naming_the_entry(tmp_path: Path, target: bytes) -> None:
    data = directory(b"tokenizer/") + member(b"tokenizer/v", b"v") + member(b"a", b"a")
    data += directory(b"sub/") + link_entry(b"weights", target) + END
    with pytest.raises(IntegrityError, match=r"refusing tar layer entry 'weights': a symbolic link"):
        extract_layer(data, tmp_path / "out")


def test_no_entry_is_written_through_a_link_of_the_same_layer(tmp_path: Path) -> None:
    """Regression: tarfile's data filter let 'weights -> tokenizer' then 'weights/x' write tokenizer/x."""
    data = directory(b"tokenizer/") + link_entry(b"weights", b"tokenizer") + member(b"weights/x", b"x") + END
    with pytest.raises(IntegrityError, match="'weights'"):
        extract_layer(data, tmp_path / "out")
    assert not (tmp_path / "out" / "tokenizer" / "x").exists()


def test_no_layer_writes_through_a_link_another_layer_made(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = member(b"config.json", b"{}") + link_entry(b"weights", b"config.json") + END
    assert extract_layer(first, out) == ["config.json", "weights"]
    with pytest.raises(IntegrityError, match="'weights/x' would be written through a link"):
        extract_layer(member(b"weights/x", b"x") + END, out)
    outside = tmp_path / "outside"
    outside.mkdir()
    (out / "tokenizer").symlink_to(outside)  # as an older mloci (or another process) could leave
    with pytest.raises(IntegrityError, match="'tokenizer/deep/x' would be written through a link"):
        extract_layer(member(b"tokenizer/deep/x", b"x") + END, out)
    with pytest.raises(IntegrityError, match="'tokenizer/x' would be written through a link"):
        make_parents(out, "tokenizer/x")  # a raw layer's directories
    assert list(outside.iterdir()) == []


def test_a_hard_link_to_a_regular_file_earlier_in_the_layer_is_kept(tmp_path: Path) -> None:
    data = member(b"w/a", b"abc") + link_entry(b"w/b", b"./w/a", b"1") + END
    assert extract_layer(data, tmp_path / "out") == ["w/a", "w/b"]
    assert (tmp_path / "out" / "w" / "b").read_bytes() == b"abc"


@pytest.mark.parametrize(
    "entries",
    [
        link_entry(b"h", b"later", b"1") + member(b"later", b"x"),  # not earlier in the layer
        link_entry(b"h", b"other.bin", b"1"),  # another layer's file
        link_entry(b"s", b"f", b"2") + member(b"f", b"x") + link_entry(b"h", b"s", b"1"),  # a link
        directory(b"d/") + link_entry(b"h", b"d", b"1"),  # a directory
        link_entry(b"h", b"/etc/passwd", b"1"),
        link_entry(b"h", b"../other.bin", b"1"),
    ],
    ids=["later", "other-layer", "symlink", "directory", "absolute", "outside"],
)
def test_other_hard_links_are_refused(tmp_path: Path, entries: bytes) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "other.bin").write_bytes(b"from another layer")
    with pytest.raises(IntegrityError, match=r"refusing tar layer entry 'h': a hard link to"):
        extract_layer(entries + END, out)
    assert (out / "other.bin").stat().st_nlink == 1


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        (member(b"dev", typeflag=b"3"), "device"),
        (member(b"fifo", typeflag=b"6"), "FIFO"),
        (member(b"vol", b"x", typeflag=b"V"), "type 'V'"),
        (member(b"../up", b"x"), "unsafe file path"),
        (member(b".mloci/pull.json", b"x"), "unsafe file path"),
        (member(b"a", b"1") + member(b"./a", b"2"), "'a' twice"),
        (member(b"a", b"1") + member(b"a/b", b"2"), "'a/b' would be written through a link or under a file"),
        (member(b"a", b"1") + directory(b"a/"), "'a/' would be written"),
    ],
)
def test_whole_layers_refuse_what_cannot_be_written_safely(tmp_path: Path, entry: bytes, kind: str) -> None:
    with pytest.raises(IntegrityError, match=kind):
        extract_layer(entry + END, tmp_path / "out")


def swap_for_link(directory: Path, outside: Path) -> object:
    """A check() that, once ``directory`` exists, moves it away and puts a link to ``outside`` there."""

    def check() -> None:
        if directory.is_dir() and not directory.is_symlink():
            directory.rename(directory.with_name("moved"))
            directory.symlink_to(outside)

    return check


@pytest.mark.parametrize("indexed", [True, False])
def test_a_directory_swapped_for_a_link_mid_layer_does_not_redirect_writes(
    tmp_path: Path, indexed: bool
) -> None:
    """The race the path-based check had: the parent was checked, then the file opened by path."""
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    data = member(b"m/a", b"a") + member(b"m/b", b"b") + member(b"m/c", b"c") + END
    check = swap_for_link(out / "m", outside)
    assert callable(check)
    if indexed:
        names = ["m/a", "m/b", "m/c"]
        assert extract_indexed(iter([data]), out, names, lambda n: None, check) == names
    else:
        assert extract_layer(data, out, check) == ["m/a", "m/b", "m/c"]
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (out / "moved").iterdir()) == ["a", "b", "c"]


def test_deep_paths_do_not_keep_a_descriptor_per_directory(tmp_path: Path) -> None:
    deep = "/".join(["d"] * 150)
    data = member(f"{deep}/a".encode()[:99], b"a")
    data = pax(record("path", f"{deep}/a")) + header(b"x", 1) + b"a" + bytes(511)
    data += pax(record("path", f"{deep[:-2]}/b")) + header(b"y", 1) + b"b" + bytes(511)
    data += member(b"d/d/x", b"x") + member(b"top", b"t") + END  # d/d's descriptor was closed: walked again
    before = len(list(Path("/proc/self/fd").iterdir()))
    assert extract_layer(data, tmp_path / "out") == sorted(["d/d/x", f"{deep[:-2]}/b", f"{deep}/a", "top"])
    assert len(list(Path("/proc/self/fd").iterdir())) == before  # every descriptor closed
    assert (tmp_path / "out" / deep / "a").read_bytes() == b"a"
    assert (tmp_path / "out" / "d" / "d" / "x").read_bytes() == b"x"


@pytest.mark.parametrize("codec", ["gzip", "bz2", "xz", "gzip-two-members"])
def test_compressed_layers_are_detected_and_inflated(tmp_path: Path, codec: str) -> None:
    import bz2
    import gzip
    import lzma

    data = member(b"w/a", b"abc" * 1000) + member(b"w/b", b"b") + END
    packed = {
        "gzip": lambda: gzip.compress(data),
        "bz2": lambda: bz2.compress(data),
        "xz": lambda: lzma.compress(data),
        "gzip-two-members": lambda: gzip.compress(data[:1024]) + gzip.compress(data[1024:]),
    }[codec]()
    (tmp_path / "layer").write_bytes(packed)
    (tmp_path / "out").mkdir()
    assert _untar(tmp_path / "layer", tmp_path / "out") == ["w/a", "w/b"]
    assert (tmp_path / "out" / "w" / "a").read_bytes() == b"abc" * 1000


@pytest.mark.parametrize("damage", [lambda d: d[:-20], lambda d: d[:30] + b"\xff" * 8 + d[38:]])
def test_damaged_compressed_layers_are_integrity_errors(tmp_path: Path, damage: object) -> None:
    import gzip

    assert callable(damage)
    data = gzip.compress(member(b"w/a", bytes(range(256)) * 40) + END)
    (tmp_path / "layer").write_bytes(damage(data))
    (tmp_path / "out").mkdir()
    with pytest.raises(IntegrityError, match="corrupt tar layer"):
        _untar(tmp_path / "layer", tmp_path / "out")


def test_a_header_checksummed_as_signed_bytes_by_an_old_tar_is_accepted(tmp_path: Path) -> None:
    block = bytearray(header(b"m/a", 3))
    block[265:270] = "rené".encode("latin-1") + b"\xff"  # user name bytes over 127
    block[148:156] = b" " * 8
    signed = sum(b - 256 if b > 127 else b for b in block)
    block[148:156] = b"%06o\0 " % signed
    data = bytes(block) + b"abc" + bytes(509) + END
    assert extract(data, tmp_path / "out", ["m/a"]) == ["m/a"]
    block[148:156] = b"%06o\0 " % (signed + 1)
    with pytest.raises(IntegrityError, match="checksum"):
        extract(bytes(block) + b"abc" + bytes(509) + END, tmp_path / "out2", ["m/a"])
