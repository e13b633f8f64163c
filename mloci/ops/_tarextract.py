"""Extract tar layers while they stream in: mloci's own (a file index describes them) and whole ones.

Python's ``tarfile.extractall`` with the ``data`` filter costs several system calls per member
(path resolution, chmod, utime), needs the whole layer on disk first, and lets a later entry (or a
later layer) write through an in-tree link an earlier one made; ``tarfile``'s stream mode costs
about 150 µs of interpreter time per member. Here the headers are parsed as the layer streams, and
every file is created ``O_EXCL|O_NOFOLLOW`` relative to the descriptor of its directory, which was
opened component by component with ``O_NOFOLLOW|O_DIRECTORY`` (:class:`_Tree`): no link — one in
the tar, one another layer made, or one swapped in by another process — is ever followed.
:func:`extract_indexed` writes only the regular files the index lists; :func:`extract_all` unpacks
a whole layer by the rules ``docs/format.md`` states. The stream is the store's verified iterator,
drained to its end: a layer whose digest does not match raises IntegrityError after extraction, and
the caller discards the staging directory.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import itertools
import lzma
import os
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mloci.errors import IntegrityError


class _Reader:
    """Exact-size reads over a stream of byte chunks, reporting each chunk as it is taken."""

    def __init__(self, chunks: Iterator[bytes], consumed: Callable[[int], None]) -> None:
        self._chunks = chunks
        self._consumed = consumed
        self._buffer = b""
        self._position = 0

    def _fill(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._consumed(len(chunk))
        rest = self._buffer[self._position :]
        self._buffer = rest + chunk if rest else chunk
        self._position = 0
        return True

    def read(self, size: int) -> bytes:
        """``size`` bytes, or fewer at the end of the stream."""
        while len(self._buffer) - self._position < size and self._fill():
            pass
        data = self._buffer[self._position : self._position + size]
        self._position += len(data)
        return data

    def copy(self, size: int, out: int | None) -> bool:
        """Pass ``size`` bytes to the file descriptor ``out`` (or skip them); False when the stream ends first."""
        while size:
            if self._position >= len(self._buffer) and not self._fill():
                return False
            end = min(len(self._buffer), self._position + size)
            if out is not None:
                view = memoryview(self._buffer)[self._position : end]
                while view:
                    view = view[os.write(out, view) :]
            size -= end - self._position
            self._position = end
        return True

    def drain(self) -> None:
        """Read to the end, so the verifying iterator checks the digest."""
        self._buffer = b""
        self._position = 0
        for chunk in self._chunks:
            self._consumed(len(chunk))


_REGULAR = frozenset((b"0", b"\0", b"7"))
_EXTENDED = frozenset((b"x", b"g", b"L", b"K"))
_LINKS = frozenset((b"1", b"2"))
_KINDS = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "device",
    b"4": "device",
    b"5": "directory",
    b"6": "FIFO",
}
_BLOCK = 512
_MAX_EXTENDED = 1 << 20  # a PAX header or GNU long name larger than this is refused, not buffered
_OCTAL = re.compile(rb"[0-7]*")
_ZERO_BLOCK = bytes(_BLOCK)
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIRECTORIES = 64  # directory descriptors a tree keeps open at most (deeper paths re-walk)


def _octal(field: bytes) -> int:
    if field[:1] == b"\x80":  # GNU base-256, positive (0xff starts a negative number)
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not _OCTAL.fullmatch(text):  # int() would also take '-1', '0o7', '1_0'
        raise IntegrityError(f"corrupt tar layer: bad number {text[:20]!r} in a header")
    return int(text or b"0", 8)


def _pax(data: bytes) -> dict[str, str]:
    """The records of a PAX extended header (``LEN key=value\\n``).

    A record with an empty value is kept (as ``""``): POSIX pax says it deletes the field of that
    name — the entry then takes the ustar header's field (see :func:`_entries`).
    """
    records: dict[str, str] = {}
    position = 0
    while position < len(data) and data[position] != 0:
        length_text, _, _ = data[position : position + 20].partition(b" ")
        if not length_text.isdigit() or int(length_text) <= len(length_text) + 1:
            raise IntegrityError("corrupt tar layer: bad PAX record")
        length = int(length_text)
        if position + length > len(data):
            raise IntegrityError("corrupt tar layer: bad PAX record (longer than its header)")
        record = data[position + len(length_text) + 1 : position + length]
        key, sep, value = record.partition(b"=")
        if not sep or not key or not record.endswith(b"\n"):
            raise IntegrityError("corrupt tar layer: bad PAX record")
        records[key.decode("utf-8", "surrogateescape")] = value[:-1].decode("utf-8", "surrogateescape")
        position += length
    return records


def _entries(reader: _Reader, check: Callable[[], None]) -> Iterator[tuple[str, bytes, int, str, bytes]]:
    """Each entry's (name, typeflag, size, link name, mode) until the end blocks; the caller reads
    or skips its data (``size`` bytes padded to a block) before asking for the next one.

    The headers are parsed here (POSIX ustar, PAX ``path``/``size``/``linkpath`` records, GNU long
    names and base-256 sizes, checksums checked), not by :mod:`tarfile`: its stream mode costs about
    150 µs of interpreter time per member, which for 100,000 small files was most of a pull.
    """
    pending: dict[str, str] = {}  # from a PAX or GNU long-name header, for the next entry
    extended = 0  # bytes of those headers
    while True:
        header = reader.read(_BLOCK)
        if len(header) < _BLOCK:
            if header:
                raise IntegrityError("corrupt tar layer: unexpected end of data")
            return
        if header == _ZERO_BLOCK:
            return
        check()
        name_field = header[0:100].split(b"\0", 1)[0]
        if header[257:263] == b"ustar\0" and header[345] != 0:
            name_field = header[345:500].split(b"\0", 1)[0] + b"/" + name_field
        stored = _octal(header[148:156])
        # The signed sum (some old tars) only when the usual one does not match: it is slow to compute.
        if stored != sum(header) - sum(header[148:156]) + 256 and stored != _signed_sum(header):
            raise IntegrityError(f"corrupt tar layer: bad header checksum at entry {name_field[:200]!r}")
        typeflag = header[156:157]
        size = _octal(header[124:136])
        if typeflag in _EXTENDED:  # extended headers: they describe the next entry
            padded = size + (-size % _BLOCK)
            extended += size  # several in a row are held together: bound their sum
            if extended > _MAX_EXTENDED:
                raise IntegrityError(f"corrupt tar layer: extended headers of {extended} bytes are too large")
            data = reader.read(padded)
            if len(data) < padded:
                raise IntegrityError("corrupt tar layer: unexpected end of data")
            if typeflag == b"x":  # 'g' (global) records are not applied: mloci's layers never hold them
                pending.update(_pax(data[:size]))
            elif typeflag in (b"L", b"K"):
                key = "path" if typeflag == b"L" else "linkpath"
                pending[key] = data[:size].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        # An empty PAX value deletes that field (POSIX pax): the ustar header's field applies.
        name = pending.get("path") or name_field.decode("utf-8", "surrogateescape")
        linkname = ""
        if typeflag in _LINKS:
            linkname = pending.get("linkpath") or header[157:257].split(b"\0", 1)[0].decode(
                "utf-8", "surrogateescape"
            )
        text = pending.get("size")
        if text:
            if not (text.isascii() and text.isdigit()):
                raise IntegrityError("corrupt tar layer: bad PAX size")
            size = int(text)
        sparse = typeflag == b"S" or any(key.startswith("GNU.sparse.") and pending[key] for key in pending)
        pending.clear()
        extended = 0
        name = name.removeprefix("./")
        if sparse:  # GNU 'S' entries are followed by blocks their size does not count
            raise IntegrityError(f"refusing tar layer entry {name!r}: sparse files are not supported")
        yield name, typeflag, size, linkname, header[100:108]


class _Tree:
    """Directories under ``root`` opened one component at a time, never through a link.

    Each component is opened with ``O_NOFOLLOW|O_DIRECTORY`` relative to its parent's descriptor
    (and created first when missing), so a link another layer — or another process — puts in the
    way is refused, not followed, whenever it appears. Entries of a tar arrive sorted, so the
    descriptors of the current directory chain are kept: most files reuse their parent's.
    """

    def __init__(self, root: str) -> None:
        self.root = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._parts: list[str] = []
        self._fds: list[int] = []  # one per part; -1 once closed to bound how many stay open
        self._first_open = 0
        self._head: str | None = ""

    def parent(self, name: str) -> tuple[int, str]:
        """(descriptor of the directory ``name`` goes in, its last component), creating directories."""
        head, _, base = name.rpartition("/")
        if head == self._head:
            return (self._fds[-1] if self._fds else self.root), base
        self._head = None  # until the walk below succeeds
        parts = head.split("/") if head else []
        keep = 0
        limit = min(len(parts), len(self._parts))
        while keep < limit and parts[keep] == self._parts[keep]:
            keep += 1
        if keep and self._fds[keep - 1] < 0:
            keep = 0  # that ancestor's descriptor was closed: walk again from the root
        self._truncate(keep)
        fd = self._fds[-1] if self._fds else self.root
        for part in parts[keep:]:
            fd = _open_directory(fd, part, name)
            self._parts.append(part)
            self._fds.append(fd)
            if len(self._fds) - self._first_open > _OPEN_DIRECTORIES:
                os.close(self._fds[self._first_open])
                self._fds[self._first_open] = -1
                self._first_open += 1
        self._head = head
        return fd, base

    def _truncate(self, keep: int) -> None:
        for fd in self._fds[keep:]:
            if fd >= 0:
                os.close(fd)
        del self._fds[keep:], self._parts[keep:]
        self._first_open = min(self._first_open, keep)

    def close(self) -> None:
        self._truncate(0)
        self._head = None
        os.close(self.root)


def _open_directory(parent: int, part: str, name: str) -> int:
    """The descriptor of directory ``part`` in ``parent``, made if missing; IntegrityError when it is a link or a file."""
    for attempt in (1, 2):
        try:
            return os.open(part, _DIRECTORY, dir_fd=parent)
        except FileNotFoundError:
            if attempt == 2:
                raise
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise  # the disk, not the layer
            raise IntegrityError(
                f"tar layer entry {name!r} would be written through a link or under a file"
            ) from None
        with contextlib.suppress(FileExistsError):  # made meanwhile by another layer: opened, never followed
            os.mkdir(part, 0o755, dir_fd=parent)
    raise AssertionError("unreachable")


def _create(tree: _Tree, name: str, mode: int = 0o644) -> int:
    """A new file for ``name`` (``O_EXCL|O_NOFOLLOW`` in its parent's descriptor); IntegrityError on a clash or link."""
    parent, base = tree.parent(name)
    try:
        return os.open(base, _NEW_FILE, mode, dir_fd=parent)
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise IntegrityError(f"tar layer entry {name!r} clashes with another file of the artifact") from exc
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise  # the disk, not the layer
        raise IntegrityError(f"tar layer entry {name!r} would be written through a link") from exc


def _write_file(reader: _Reader, tree: _Tree, name: str, size: int, mode: int) -> None:
    """Create ``name`` and copy the entry's ``size`` bytes into it, then skip the block padding."""
    fd = _create(tree, name, mode)
    try:
        complete = reader.copy(size, fd)
    finally:
        os.close(fd)
    if not complete or not reader.copy(-size % _BLOCK, None):
        raise IntegrityError("corrupt tar layer: unexpected end of data")


def make_parents(root: Path, name: str) -> None:
    """Create the directories above ``root/name`` without following a link; IntegrityError when one is a link or a file.

    For raw layers, written into the staging directory a tar layer may have put links in.
    """
    tree = _Tree(os.fspath(root))
    try:
        tree.parent(name)
    finally:
        tree.close()


def extract_indexed(
    chunks: Iterator[bytes],
    staging: Path,
    wanted: Sequence[str],
    consumed: Callable[[int], None],
    check: Callable[[], None],
) -> list[str]:
    """Write the regular files named in ``wanted`` (validated relative paths) from the tar stream into ``staging``."""
    names = set(wanted)
    written: set[str] = set()
    reader = _Reader(chunks, consumed)
    tree = _Tree(os.fspath(staging))
    try:
        for name, typeflag, size, _link, _mode in _entries(reader, check):
            padded = size + (-size % _BLOCK)
            if name in written:
                raise IntegrityError(f"the tar layer holds {name!r} twice")
            if name in names and typeflag not in _REGULAR:
                kind = _KINDS.get(typeflag, f"type {typeflag.decode('latin-1')!r}")
                raise IntegrityError(f"refusing tar layer entry {name!r}: a {kind}, not a regular file")
            if name not in names:
                if not reader.copy(padded, None):
                    raise IntegrityError("corrupt tar layer: unexpected end of data")
                continue
            _write_file(reader, tree, name, size, 0o644)
            written.add(name)
    finally:
        tree.close()
    reader.drain()
    missing = names - written
    if missing:
        raise IntegrityError(f"a tar layer lacks {min(missing)!r}, which the artifact's file index lists")
    return sorted(written)


def extract_all(
    chunks: Iterator[bytes],
    staging: Path,
    validate: Callable[[str], str],
    check: Callable[[], None],
) -> list[str]:
    """Unpack a whole tar layer (one mloci's file index does not describe) into ``staging``; return what it created.

    The same rules as :func:`extract_indexed`, for every entry: each name must pass ``validate``
    (relative, no ``..``, no control characters…); files are created ``O_EXCL|O_NOFOLLOW`` under
    directories opened without following links, so no entry — of this layer or another — is
    written through a link, and an entry twice is refused. Directories are created (not listed).
    A hard link is kept only to a regular file earlier in this layer; a symbolic link only when it
    points, relatively and without leaving the tree, to a regular file of this layer (the links
    ``mloci push`` accepts in a bundle): links are made after the layer's files, so no entry can
    pass through one. Devices, FIFOs, sparse and unknown entry types are refused. Modes are
    ``0644``, or ``0755`` for an entry executable by its owner; owners and times are not restored.
    ``chunks`` may be gzip-, bzip2- or xz-compressed (detected from the first bytes).
    """
    reader = _Reader(_decompressed(chunks), lambda n: None)
    tree = _Tree(os.fspath(staging))
    created: list[str] = []
    regular: set[str] = set()
    seen: set[str] = set()
    links: list[tuple[str, str]] = []
    try:
        for entry, flag, size, linkname, mode_field in _entries(reader, check):
            padded = size + (-size % _BLOCK)
            # Old tars wrote a directory as a file whose name ends in '/'.
            typeflag = b"5" if flag == b"\0" and entry.endswith("/") else flag
            name = entry.rstrip("/") if typeflag == b"5" else entry
            if typeflag == b"5" and name in ("", "."):
                name = ""  # the layer's root: nothing to create
            else:
                validate(name)
                if "\0" in linkname:
                    raise IntegrityError(
                        f"refusing tar layer entry {name!r}: its link target holds a NUL byte"
                    )
                if typeflag != b"5":
                    if name in seen:
                        raise IntegrityError(f"the tar layer holds {name!r} twice")
                    seen.add(name)
            if typeflag in _REGULAR:
                executable = _octal(mode_field) & 0o100
                _write_file(reader, tree, name, size, 0o755 if executable else 0o644)
                regular.add(name)
                created.append(name)
                continue
            if not reader.copy(padded, None):  # links and directories: data, if any, is skipped
                raise IntegrityError("corrupt tar layer: unexpected end of data")
            if typeflag == b"5":
                if name:
                    tree.parent(name + "/")
            elif typeflag == b"1":
                target = linkname.removeprefix("./")
                if target not in regular:
                    raise IntegrityError(
                        f"refusing tar layer entry {name!r}: a hard link to {target!r}, "
                        "which is not a regular file earlier in the layer"
                    )
                _hard_link(tree, target, name)
                regular.add(name)
                created.append(name)
            elif typeflag == b"2":
                links.append((name, linkname))
            else:
                kind = _KINDS.get(typeflag, f"type {typeflag.decode('latin-1')!r}")
                raise IntegrityError(f"refusing tar layer entry {name!r}: a {kind}")
        for name, linkname in links:
            pointed = _link_target(name, linkname)
            if pointed is None or pointed not in regular:
                raise IntegrityError(
                    f"refusing tar layer entry {name!r}: a symbolic link to {linkname!r}; only links to "
                    "a regular file of the same layer, inside it, are kept"
                )
            parent, base = tree.parent(name)
            try:
                os.symlink(linkname, base, dir_fd=parent)
            except FileExistsError:
                raise IntegrityError(
                    f"tar layer entry {name!r} clashes with another file of the artifact"
                ) from None
            created.append(name)
    finally:
        tree.close()
    reader.drain()
    return sorted(created)


def _link_target(name: str, linkname: str) -> str | None:
    """The tree path a relative symbolic link at ``name`` points to; None when it is absolute, leaves
    the tree, or has ``.`` or ``..`` anywhere but at its start (which could resolve otherwise on disk)."""
    parts = linkname.split("/")
    up = 0
    while up < len(parts) and parts[up] == "..":
        up += 1
    rest = parts[up:]
    directory = name.split("/")[:-1]
    if not rest or up > len(directory) or any(part in ("", ".", "..") for part in rest):
        return None
    return "/".join(directory[: len(directory) - up] + rest)


def _hard_link(tree: _Tree, target: str, name: str) -> None:
    """Link ``name`` to the file ``target`` extracted before it (a copy where the filesystem has no hard links)."""
    source = os.dup(tree.parent(target)[0])
    try:
        parent, base = tree.parent(name)
        try:
            os.link(
                target.rpartition("/")[2], base, src_dir_fd=source, dst_dir_fd=parent, follow_symlinks=False
            )
            return
        except FileExistsError:
            raise IntegrityError(
                f"tar layer entry {name!r} clashes with another file of the artifact"
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
        reading = os.open(
            target.rpartition("/")[2], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=source
        )
        try:
            fd = _create(tree, name)
            try:
                while data := os.read(reading, 1 << 20):
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        finally:
            os.close(reading)
    finally:
        os.close(source)


def _decompressed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks`` as they are, or inflated when they start like gzip, bzip2 or xz (as ``tarfile``'s ``r:*`` did)."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= 6:
            break
    stream = itertools.chain((head,) if head else (), chunks)
    if head.startswith(b"\x1f\x8b"):
        return _inflate(stream, lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))
    if head.startswith(b"BZh"):
        return _inflate(stream, bz2.BZ2Decompressor)
    if head.startswith(b"\xfd7zXZ\x00"):
        return _inflate(stream, lzma.LZMADecompressor)
    return stream


_INFLATE_STEP = 1 << 20


def _inflate(chunks: Iterator[bytes], start: Callable[[], Any]) -> Iterator[bytes]:
    """Decompress one or more concatenated members, at most 1 MiB of output at a time (flat memory)."""
    decompressor = start()
    for chunk in chunks:  # a read error here is the disk's, not the layer's
        data = chunk
        try:
            while data:
                if decompressor.eof:
                    if not data.strip(b"\0"):
                        break  # zero padding after the last member
                    decompressor = start()  # another member
                if hasattr(decompressor, "unconsumed_tail"):  # zlib
                    yield decompressor.decompress(data, _INFLATE_STEP)
                    data = decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail
                    continue
                yield decompressor.decompress(data, _INFLATE_STEP)  # bz2, lzma: they buffer the input
                while not decompressor.eof and not decompressor.needs_input:
                    yield decompressor.decompress(b"", _INFLATE_STEP)
                data = decompressor.unused_data if decompressor.eof else b""
        except (zlib.error, lzma.LZMAError, OSError, EOFError) as exc:
            raise IntegrityError(f"corrupt tar layer: bad compressed data ({exc})") from None
    if not decompressor.eof:
        raise IntegrityError("corrupt tar layer: the compressed data ends early")


def _signed_sum(header: bytes) -> int:
    """The checksum some old tars wrote: the header's bytes summed as signed chars."""
    return (
        sum(b - 256 if b > 127 else b for b in header[:148])
        + 256
        + sum(b - 256 if b > 127 else b for b in header[156:])
    )
