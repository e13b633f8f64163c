"""Directories of many small files as one deterministic ModelPack tar layer, with a file index.

Pushing 100,000 tokenizer or dataset files as 100,000 raw layers costs 100,000 round trips and
a manifest larger than registries accept. Instead, a directory of many small files becomes one
``application/vnd.cncf.model.<kind>.v1.tar`` layer, and a small JSON *file index* layer records
each file's path, size and digest, so ``inspect``, ``diff`` and ``pull --filter`` still see files.

The tar bytes depend only on the files' paths and contents: entries sorted by the UTF-8 bytes of
their path, regular files only (directories are implied), mode 0644, uid/gid 0, empty user and
group names, mtime 0. Headers are POSIX ustar; an entry ustar cannot describe (a path longer than
100 bytes or not ASCII, a file of 8 GiB or more) is preceded by a PAX extended header holding just
``path``/``size`` records. The archive ends with two zero blocks. Headers are written here, not by
:mod:`tarfile`, so the bytes cannot change with the Python version. ``docs/format.md`` documents it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydantic import ValidationError

from mloci._sqlite import LazyCache
from mloci.bundle.files import FileEntry, layer_kind, stat_key, unpack_stat_key
from mloci.bundle.manifest import MANIFEST_FILENAME, BundleManifest, Pack
from mloci.errors import IntegrityError, MlociError, UsageError
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.file_index import FILE_INDEX_PATH, INDEX_VERSION, ROLE_FILE_INDEX
from mloci.types.manifest import Descriptor, canonical_json

BLOCK = 512
_USTAR_MAX_SIZE = 0o77777777777  # 8 GiB - 1: the largest size 11 octal digits hold
_READ = 1 << 20
_BATCH = 1 << 20


@dataclass(frozen=True)
class TarGroup:
    """Files packed together: ``path`` is the directory the layer stands for."""

    path: str
    files: tuple[FileEntry, ...]

    @property
    def kind(self) -> str:
        """The most common ModelPack kind among the files (ties: in ModelPack's kind order)."""
        counts = Counter(layer_kind(f.path) for f in self.files)
        return max(mediatype.LAYER_KINDS, key=lambda k: (counts[k], -mediatype.LAYER_KINDS.index(k)))


@dataclass(frozen=True)
class PackPlan:
    raw: tuple[FileEntry, ...]
    groups: tuple[TarGroup, ...]

    @property
    def packed_paths(self) -> frozenset[str]:
        return frozenset(f.path for g in self.groups for f in g.files)


def _rule(path: str, settings: Pack) -> tuple[str, str] | None:
    """The longest ``tar``/``raw`` directory of ``settings`` containing ``path``: (choice, directory)."""
    best: tuple[str, str] | None = None
    for choice, dirs in (("tar", settings.tar), ("raw", settings.raw)):
        for directory in dirs:
            if (path == directory or path.startswith(directory + "/")) and (
                best is None or len(directory) > len(best[1])
            ):
                best = (choice, directory)
    return best


_last_plan: list[tuple[Sequence[FileEntry], Pack | None, PackPlan]] = []


def plan(files: Sequence[FileEntry], settings: Pack | None) -> PackPlan:
    """Which files stay raw layers and which directories pack as tar layers (see docs/format.md).

    A push asks twice for the same bundle (hashing, then packing); the last answer is reused.
    """
    if _last_plan and _last_plan[0][0] is files and _last_plan[0][1] == settings:
        return _last_plan[0][2]
    result = _plan(files, settings)
    _last_plan[:] = [(files, settings, result)]
    return result


def _plan(files: Sequence[FileEntry], settings: Pack | None) -> PackPlan:
    settings = settings or Pack()
    raw: list[FileEntry] = []
    forced: dict[str, list[FileEntry]] = {}
    auto: dict[str, list[FileEntry]] = {}
    for entry in files:
        rule = _rule(entry.path, settings)
        if entry.path == MANIFEST_FILENAME or "/" not in entry.path or (rule and rule[0] == "raw"):
            raw.append(entry)
        elif rule:
            if rule[1] == entry.path:  # a file named in 'tar' is just a file
                raw.append(entry)
            else:
                forced.setdefault(rule[1], []).append(entry)
        elif entry.size <= settings.small_file_size:
            auto.setdefault(entry.path.split("/", 1)[0], []).append(entry)
        else:
            raw.append(entry)
    for directory, entries in auto.items():
        if len(entries) >= settings.min_files:
            forced.setdefault(directory, []).extend(entries)
        else:
            raw.extend(entries)
    groups = [
        TarGroup(d, tuple(sorted(fs, key=lambda f: f.path.encode()))) for d, fs in sorted(forced.items())
    ]
    return PackPlan(tuple(sorted(raw, key=lambda f: f.path.encode())), tuple(groups))


# --- tar bytes -------------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _template(typeflag: bytes) -> bytearray:
    block = bytearray(BLOCK)
    block[100:108] = _octal(0o644, 8)
    block[108:116] = _octal(0, 8)
    block[116:124] = _octal(0, 8)
    block[136:148] = _octal(0, 12)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[257:263] = b"ustar\0"
    block[263:265] = b"00"
    block[329:337] = _octal(0, 8)
    block[337:345] = _octal(0, 8)
    return block


def _dir_template() -> bytearray:
    block = _template(b"5")
    block[100:108] = _octal(0o755, 8)
    return block


_TEMPLATES = {flag: (_template(flag), sum(_template(flag))) for flag in (b"0", b"x")}
_TEMPLATES[b"5"] = (_dir_template(), sum(_dir_template()))


def _header(name: bytes, size: int, typeflag: bytes) -> bytes:
    """A ustar header: the fixed fields come from a template, so only name, size and checksum are computed."""
    template, base = _TEMPLATES[typeflag]
    block = bytearray(template)
    block[0 : len(name)] = name
    size_field = _octal(size, 12)
    block[124:136] = size_field
    block[148:156] = b"%06o\0 " % (base + sum(name) + sum(size_field))
    return bytes(block)


def _pad(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


pad = _pad  # the zero bytes that complete an entry of ``size`` bytes to a 512-byte block


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


def directory_header(path: str) -> bytes:
    """The header of a directory entry (mode 0755), for archives that list directories (OCI layouts)."""
    name = (path.rstrip("/") + "/").encode()
    if len(name) > 100 or not path.isascii():
        raise ValueError(f"directory name {path!r} does not fit a ustar header")
    return _header(name, 0, b"5")


def entry_header(path: str, size: int) -> bytes:
    """The header block(s) of one regular file: ustar, with a PAX header first when ustar cannot hold it."""
    name = path.encode()
    records = b""
    if len(name) > 100 or not path.isascii():
        records += _pax_record("path", path)
        name = b"mloci-pax-path"
    if size > _USTAR_MAX_SIZE:
        records += _pax_record("size", str(size))
    if not records:
        return _header(name, size, b"0")
    return (
        _header(b"././@PaxHeader", len(records), b"x")
        + records
        + _pad(len(records))
        + _header(name, size if size <= _USTAR_MAX_SIZE else 0, b"0")
    )


END = b"\0" * (2 * BLOCK)


def entry_offsets(files: Iterable[tuple[str, int]]) -> Iterator[tuple[int, int]]:
    """Where each entry of a layer with these (path, size) files, in this order, starts in the tar:
    (offset of its first header block — the PAX header when it has one —, offset of its data).

    The layout depends only on the paths and sizes the file index records, so a reader can find any
    file's bytes (e.g. to fetch from there with ``Range``) without the index storing offsets.
    """
    offset = 0
    for path, size in files:
        header = len(entry_header(path, size))
        yield offset, offset + header
        offset += header + size + (-size % BLOCK)


_StatKey = bytes  # (mtime_ns, ctime_ns, inode, device), as FileEntry.stat_key


def _read_small(entry: FileEntry) -> bytes:
    """A small file's bytes in one read; IntegrityError when its size changed since the bundle was scanned."""
    return _read_small_stat(entry)[0]


def _read_small_stat(entry: FileEntry) -> tuple[bytes, _StatKey]:
    """Like :func:`_read_small`, with what ``fstat`` says about the file once it was read."""
    try:
        fd = os.open(entry.location, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, entry.size + 1)
            while len(data) < entry.size and (more := os.read(fd, entry.size + 1 - len(data))):
                data += more
            info = os.fstat(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise MlociError(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
    if len(data) != entry.size:
        raise IntegrityError(f"{entry.path} changed while it was being packed; push again")
    return data, stat_key(info)


# Threads reading and hashing small files ahead of the packer (syscalls and hashlib release the GIL).
_READERS = 3
_READ_BATCH = 64  # files per read-ahead task


_Read = tuple[bytes, _StatKey, str]  # a small file's bytes, stat key and digest


def _read_hashed(entry: FileEntry) -> _Read | None:
    if entry.size > _READ:
        return None
    data, key = _read_small_stat(entry)
    return data, key, f"sha256:{hashlib.sha256(data).hexdigest()}"


def _read_ahead(files: Sequence[FileEntry]) -> Iterator[_Read | None]:
    """Each small file's bytes, stat key and digest, in order, read and hashed by a few threads ahead
    of the caller; None for a file larger than one read (the caller streams it)."""

    def batch(start: int) -> list[_Read | None]:
        return [_read_hashed(e) for e in files[start : start + _READ_BATCH]]

    if not _READERS:
        for start in range(0, len(files), _READ_BATCH):
            yield from batch(start)
        return
    pool = ThreadPoolExecutor(_READERS, thread_name_prefix="mloci-tar-read")
    try:
        starts = iter(range(0, len(files), _READ_BATCH))
        pending: deque[Future[list[_Read | None]]] = deque()
        for start in itertools.islice(starts, 2 * _READERS):
            pending.append(pool.submit(batch, start))
        while pending:
            done = pending.popleft().result()
            for start in itertools.islice(starts, 1):
                pending.append(pool.submit(batch, start))
            yield from done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _contents(entry: FileEntry) -> Iterator[bytes]:
    if entry.size <= _READ:
        yield _read_small(entry)
    else:
        yield from _read_exact(entry)


def _read_exact(entry: FileEntry) -> Iterator[bytes]:
    """The file's bytes (small files in one read), refusing a file whose size changed since the bundle was scanned."""
    remaining = entry.size
    try:
        fd = os.open(entry.location, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise MlociError(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
    try:
        while remaining:
            chunk = os.read(fd, min(remaining, _READ))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
        extra = os.read(fd, 1)
    except OSError as exc:
        raise MlociError(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if remaining or extra:
        raise IntegrityError(f"{entry.path} changed while it was being packed; push again")


def tar_chunks(files: Iterable[FileEntry], check: Callable[[], None] | None = None) -> Iterator[bytes]:
    """The tar layer's bytes, in batches of about 1 MiB."""
    batch = bytearray()
    for entry in files:
        if check is not None:
            check()
        batch += entry_header(entry.path, entry.size)
        for chunk in _contents(entry):
            batch += chunk
            if len(batch) >= _BATCH:
                yield bytes(batch)
                batch.clear()
        batch += _pad(entry.size)
        if len(batch) >= _BATCH:
            yield bytes(batch)
            batch.clear()
    batch += END
    yield bytes(batch)


class _IterReader(io.RawIOBase):
    """A forward-only file object over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self._position = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or offset != self._position:
            raise MlociError("a tar layer is generated as it is read and cannot be re-read from the middle")
        return self._position

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = memoryview(chunk)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self._position += n
        return n


@dataclass
class TarLayer:
    """A packed group: the layer blob (its bytes are re-generated from the files when read) and its file list."""

    blob: Blob
    files_json: bytes = b"[]"
    """The file list as the index holds it: canonical JSON ``[{"digest":…,"path":…,"size":…},…]``.

    Kept serialized, not as one dict per file: for 100,000 files that is about 11 MB instead of
    about 40 MB of Python objects, and the index and the tar cache are written from it as is."""

    @property
    def files(self) -> list[dict[str, Any]]:
        """Each file's path, size and digest (parsed on every call)."""
        files: list[dict[str, Any]] = json.loads(self.files_json)
        return files


def file_record(path: str, size: int, digest: str) -> bytes:
    """``canonical_json({"digest": digest, "path": path, "size": size})``, without the dict."""
    return b'{"digest":%s,"path":%s,"size":%d}' % (_json_str(digest), _json_str(path), size)


def _json_str(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


class TarCache:
    """Tar layers already built from exactly these files, by what ``stat`` says (path, size, mtime,
    ctime, inode, device — the evidence the digest cache trusts), so an unchanged directory of
    100,000 files is not read again on the next push. Any problem with it means "build again"."""

    _SCHEMA = "CREATE TABLE IF NOT EXISTS tar_layers (signature TEXT PRIMARY KEY, layer TEXT)"

    def __init__(self, path: Path | None) -> None:
        self._cache = LazyCache(path, self._SCHEMA)

    def get(self, signature: str) -> dict[str, Any] | None:
        rows = self._cache.rows("SELECT layer FROM tar_layers WHERE signature=?", (signature,))
        with contextlib.suppress(ValueError):
            value = json.loads(rows[0][0]) if rows else None
            return value if isinstance(value, dict) else None
        return None

    def put(self, signature: str, layer: dict[str, Any], files_json: bytes) -> None:
        """Record ``layer`` (mediaType, digest, size) with its ``files`` given as JSON text, as is."""
        head = json.dumps(layer, sort_keys=True)
        text = head[:-1] + ', "files": ' + files_json.decode() + "}"
        self._cache.write("INSERT OR REPLACE INTO tar_layers VALUES (?, ?)", (signature, text))

    def close(self) -> None:
        self._cache.close()


def _stat_key(entry: FileEntry) -> _StatKey:
    if entry.stat_key is not None:
        return entry.stat_key
    info = entry.source.stat()
    return stat_key(info)


def _signature(group: TarGroup) -> str | None:
    """What ``stat`` said about every file of the group when the bundle was scanned, hashed; None
    when a file cannot be stat'ed."""
    hasher = hashlib.sha256(b"mloci tar layer v1\n")
    lines = []
    try:
        for entry in group.files:
            mtime, ctime, ino, dev = unpack_stat_key(_stat_key(entry))
            lines.append(f"{entry.path}\0{entry.size}\0{mtime}\0{ctime}\0{ino}\0{dev}\n")
    except OSError:
        return None
    hasher.update("".join(lines).encode())
    return hasher.hexdigest()


def build(
    group: TarGroup,
    spool: Path | None = None,
    check: Callable[[], None] | None = None,
    cache: TarCache | None = None,
) -> TarLayer:
    """Read every file once, hashing each file and the tar stream they make.

    With ``spool`` (a directory), the tar is also written to a new file there and the blob reads
    from it; otherwise the blob re-reads the files when it is uploaded. The caller removes ``spool``.
    With ``cache``, a group whose files are unchanged since a previous build is not read at all:
    its blob re-generates the bytes only if a store asks for them (and the store verifies them).
    """
    signature = _signature(group) if cache is not None else None
    if cache is not None and signature is not None:
        hit = cache.get(signature)
        with contextlib.suppress(KeyError, TypeError, ValueError, MlociError):
            if hit is not None:
                descriptor = Descriptor(
                    media_type=str(hit["mediaType"]),
                    digest=Digest.parse(str(hit["digest"])),
                    size=int(hit["size"]),
                    annotations={ann.MODEL_FILEPATH: group.path, ann.TITLE: group.path},
                )
                entries = group.files
                blob = Blob(descriptor, opener=lambda: cast(BinaryIO, _IterReader(tar_chunks(entries))))
                records = hit.pop("files")
                if not isinstance(records, list):
                    raise TypeError("files")
                return TarLayer(blob, canonical_json(records))
    layer, unchanged = _build(group, spool, check)
    # Cached only when every file, as read, still matched what the scan saw.
    if cache is not None and signature is not None and unchanged:
        descriptor = layer.blob.descriptor
        cache.put(
            signature,
            {"mediaType": descriptor.media_type, "digest": str(descriptor.digest), "size": descriptor.size},
            layer.files_json,
        )
    return layer


class _Spooler:
    """Writes chunks to a file descriptor on one background thread, at most ``depth`` chunks behind."""

    def __init__(self, fd: int, depth: int = 8) -> None:
        self._fd = fd
        self._depth = depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mloci-tar-spool")
        self._pending: deque[Future[None]] = deque()

    def _write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view) :]

    def write(self, chunk: bytes) -> None:
        self._pending.append(self._pool.submit(self._write, chunk))
        while len(self._pending) > self._depth:
            self._pending.popleft().result()  # raises what the write raised

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _build(group: TarGroup, spool: Path | None, check: Callable[[], None] | None) -> tuple[TarLayer, bool]:
    """The layer, and whether every file's ``fstat`` after reading matched its scan (cacheable)."""
    layer_hash = hashlib.sha256()
    size = 0
    files = bytearray(b"[")
    unchanged = True
    out = tempfile.NamedTemporaryFile(dir=spool, prefix="tar-", delete=False) if spool else None  # noqa: SIM115
    # The spool is written on its own thread while the next files are packed.
    writer = _Spooler(out.fileno()) if out is not None else None
    batch = bytearray()
    try:
        for entry, read in zip(group.files, _read_ahead(group.files), strict=True):
            if check is not None:
                check()
            batch += entry_header(entry.path, entry.size)
            if read is not None:
                data, key, digest = read
                batch += data
            else:
                file_hash = hashlib.sha256()
                for chunk in _read_exact(entry):
                    file_hash.update(chunk)
                    batch += chunk
                digest = f"sha256:{file_hash.hexdigest()}"
                try:
                    key = _stat_key(replace(entry, stat_key=None))
                except OSError:
                    unchanged = False
            if unchanged and key != entry.stat_key:
                unchanged = False
            batch += _pad(entry.size)
            if len(batch) >= _BATCH:
                layer_hash.update(batch)
                size += len(batch)
                if writer is not None:
                    writer.write(bytes(batch))
                batch.clear()
            if len(files) > 1:
                files += b","
            files += file_record(entry.path, entry.size, digest)
        files += b"]"
        batch += END
        layer_hash.update(batch)
        size += len(batch)
        if writer is not None and out is not None:
            writer.write(bytes(batch))
            writer.close()
            out.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        if out is not None:
            out.close()
            Path(out.name).unlink(missing_ok=True)
        raise
    descriptor = Descriptor(
        media_type=mediatype.model_layer(group.kind, "tar"),
        digest=Digest("sha256", layer_hash.hexdigest()),
        size=size,
        annotations={ann.MODEL_FILEPATH: group.path, ann.TITLE: group.path},
    )
    if out is not None:
        return TarLayer(Blob(descriptor, path=Path(out.name)), bytes(files)), unchanged
    entries = group.files
    return (
        TarLayer(
            Blob(descriptor, opener=lambda: cast(BinaryIO, _IterReader(tar_chunks(entries)))), bytes(files)
        ),
        unchanged,
    )


def index_blob(layers: Sequence[TarLayer]) -> Blob:
    """The file index layer: which files each tar layer holds, with their sizes and digests."""
    # canonical_json of {"version": …, "layers": [{"digest", "path", "files"}, …]}, assembled from
    # the layers' serialized file lists (keys in sorted order) instead of re-encoding every file.
    entries = [
        b'{"digest":%s,"files":%s,"path":%s}'
        % (
            _json_str(str(layer.blob.descriptor.digest)),
            layer.files_json,
            canonical_json(layer.blob.descriptor.annotation(ann.MODEL_FILEPATH)),
        )
        for layer in layers
    ]
    data = b'{"layers":[%s],"version":%d}' % (b",".join(entries), INDEX_VERSION)
    descriptor = Descriptor.of_bytes(
        mediatype.model_layer("doc"),
        data,
        annotations={
            ann.MODEL_FILEPATH: FILE_INDEX_PATH,
            ann.TITLE: FILE_INDEX_PATH,
            ann.ROLE: ROLE_FILE_INDEX,
        },
    )
    return Blob(descriptor, data=data)


def parse_override(text: str) -> tuple[str, str]:
    """``DIR=tar`` or ``DIR=raw`` (the CLI's --pack) as (directory, choice); UsageError otherwise."""
    directory, sep, choice = text.rpartition("=")
    if not sep or choice not in ("tar", "raw") or not directory:
        raise UsageError(f"--pack {text!r}: expected DIR=tar or DIR=raw, e.g. --pack tokenizer=tar")
    return directory.strip("/"), choice


def with_overrides(manifest: BundleManifest, overrides: Sequence[tuple[str, str]]) -> BundleManifest:
    """The manifest with --pack choices merged into its ``pack`` section (they win over the file's)."""
    if not overrides:
        return manifest
    settings = manifest.pack or Pack()
    tar = [d for d in settings.tar if d not in {d for d, _ in overrides}]
    raw = [d for d in settings.raw if d not in {d for d, _ in overrides}]
    for directory, choice in overrides:
        (tar if choice == "tar" else raw).append(directory)
    try:
        merged = Pack.model_validate(
            {**settings.model_dump(), "tar": sorted(set(tar)), "raw": sorted(set(raw))}
        )
    except ValidationError as exc:
        raise UsageError(f"--pack: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    return manifest.model_copy(update={"pack": merged})
