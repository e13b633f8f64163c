"""Walking a bundle directory: which files are packed, in which order, as which ModelPack layer kind."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from mloci.bundle.manifest import MANIFEST_FILENAME, METRICS_FILENAME
from mloci.errors import Problem
from mloci.types.text import escape_controls, has_control, is_utf8

IGNORE_FILENAME = ".mlociignore"

_WEIGHT_SUFFIXES = frozenset(
    [
        ".onnx",
        ".ort",
        ".pt",
        ".pth",
        ".bin",
        ".safetensors",
        ".gguf",
        ".ggml",
        ".pkl",
        ".pickle",
        ".joblib",
        ".h5",
        ".hdf5",
        ".keras",
        ".pb",
        ".tflite",
        ".ckpt",
        ".npz",
        ".npy",
        ".msgpack",
        ".mlmodel",
        ".xgb",
        ".ubj",
        ".lgb",
        ".cbm",
        ".params",
        ".pdparams",
        ".engine",
        ".plan",
        ".tar",
        ".zip",
    ]
)
_CONFIG_NAMES = frozenset(
    [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "preprocessor_config.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
    ]
)
_CONFIG_SUFFIXES = frozenset([".json", ".yaml", ".yml", ".toml", ".cfg", ".ini"])
_DOC_SUFFIXES = frozenset([".md", ".rst", ".txt", ".pdf", ".html", ".adoc"])
_DOC_STEMS = frozenset(["readme", "license", "licence", "notice", "changelog", "model_card", "modelcard"])
_CODE_SUFFIXES = frozenset(
    [
        ".py",
        ".ipynb",
        ".sh",
        ".r",
        ".jl",
        ".js",
        ".ts",
        ".go",
        ".rs",
        ".java",
        ".scala",
        ".c",
        ".cc",
        ".cpp",
        ".h",
        ".sql",
    ]
)
_CODE_NAMES = frozenset(
    ["dockerfile", "makefile", "requirements.txt", "pyproject.toml", "setup.cfg", "environment.yml"]
)
_DATASET_SUFFIXES = frozenset(
    [".csv", ".tsv", ".parquet", ".jsonl", ".arrow", ".feather", ".tfrecord", ".avro", ".orc"]
)


def layer_kind(path: str) -> str:
    """The ModelPack layer kind for a bundle file: weight, weight.config, doc, code or dataset."""
    # String operations, not PurePosixPath: this runs once per file, and bundles can hold 100,000 files.
    name = path.rpartition("/")[2].lower()
    stem, suffix = posixpath.splitext(name)
    if suffix == ".":
        stem, suffix = name, ""
    if path in (MANIFEST_FILENAME, METRICS_FILENAME):
        return "doc"
    if name in _CONFIG_NAMES:
        return "weight.config"
    if name in _CODE_NAMES or suffix in _CODE_SUFFIXES:
        return "code"
    if stem in _DOC_STEMS or suffix in _DOC_SUFFIXES:
        return "doc"
    if suffix in _DATASET_SUFFIXES:
        return "dataset"
    if suffix in _CONFIG_SUFFIXES:
        return "weight.config"
    # Unknown binaries in a model bundle are almost always weights.
    return "weight"


@dataclass(frozen=True, slots=True)  # slots: bundles hold 100,000 of these
class FileEntry:
    """A regular file found in a bundle directory."""

    path: str  # POSIX path relative to the bundle root
    location: str  # where it is read from (``source`` as a string: a Path per file costs ~200 bytes)
    size: int
    # (mtime_ns, ctime_ns, inode, device) when scanned, packed by stat_key(): what the tar-layer
    # cache compares (32 bytes instead of a tuple of four ints: ~150 bytes less per file).
    stat_key: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def source(self) -> Path:
        """Where the file is read from."""
        return Path(self.location)


_STAT_KEY = struct.Struct("<qqQQ")


def stat_key(info: os.stat_result) -> bytes:
    """(mtime_ns, ctime_ns, inode, device) of ``info``, packed (see FileEntry.stat_key)."""
    return _STAT_KEY.pack(info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev)


def unpack_stat_key(key: bytes) -> tuple[int, int, int, int]:
    mtime, ctime, ino, dev = _STAT_KEY.unpack(key)
    return mtime, ctime, ino, dev


def _ignore_patterns(root: Path) -> list[str]:
    ignore = root / IGNORE_FILENAME
    if not ignore.is_file():
        return []
    lines = (line.strip() for line in ignore.read_text(encoding="utf-8").splitlines())
    return [line.rstrip("/") for line in lines if line and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    if not patterns:
        return False
    name = path.rpartition("/")[2]
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def scan(root: Path) -> tuple[list[FileEntry], list[Problem]]:
    """Every file to pack, sorted by path, and the problems found on the way.

    Hidden files and directories (``.git``, ``.mlociignore``…) and ``__pycache__`` are
    skipped, as are paths matching ``.mlociignore``. A symlink to a file inside the bundle
    is packed as the file it points to; a link that leaves the bundle (or dangles), and
    any symlinked directory, is refused rather than followed. Names that are not UTF-8,
    hold control characters, or equal another name after Unicode NFC normalization are
    refused.
    """
    entries: list[FileEntry] = []
    problems: list[Problem] = []
    try:
        patterns = _ignore_patterns(root)
    except (OSError, UnicodeDecodeError) as exc:
        reason = (
            "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"cannot read: {exc.strerror or exc}"
        )
        problems.append(Problem(IGNORE_FILENAME, reason))
        patterns = []
    real_root = root.resolve()
    # os.scandir, not os.walk + Path.stat: one lstat per plain file and the directory entry's
    # type for the rest. Bundles can hold 100,000 files. Same order and checks as a top-down walk.
    pending: list[tuple[Path, str]] = [(root, "")]
    while pending:
        base, rel_dir = pending.pop()
        try:
            with os.scandir(base) as listing:
                found = list(listing)
        except OSError:
            continue  # like os.walk: an unreadable directory is skipped
        dirs: list[os.DirEntry[str]] = []
        files: list[os.DirEntry[str]] = []
        for item in found:
            try:
                is_dir = item.is_dir()
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(item)
        keep: list[tuple[Path, str]] = []
        for item in sorted(dirs, key=lambda d: d.name):
            name = item.name
            rel = f"{rel_dir}{name}"
            if name.startswith(".") or name == "__pycache__" or _ignored(rel, patterns):
                continue
            if (bad := _bad_name(rel)) is not None:
                problems.append(Problem(_shown(rel), bad))
                continue
            if item.is_symlink():
                problems.append(
                    Problem(rel, "symlinked directories are not packed; copy the directory in instead")
                )
                continue
            keep.append((base / name, rel + "/"))
        pending.extend(reversed(keep))
        for item in files:
            name = item.name
            rel = f"{rel_dir}{name}"
            if name.startswith(".") or _ignored(rel, patterns):
                continue
            if (bad := _bad_name(rel)) is not None:
                problems.append(Problem(_shown(rel), bad))
                continue
            location = item.path  # os.path.join(base, name), as a string
            try:
                if item.is_symlink():
                    target, why = _link_target(Path(location), real_root, patterns)
                    if target is None:
                        problems.append(Problem(rel, why))
                        continue
                    location = str(target)
                    info = target.stat()
                else:
                    info = item.stat(follow_symlinks=False)
            except OSError as exc:
                problems.append(Problem(rel, f"cannot read: {exc.strerror or exc}"))
                continue
            if not stat.S_ISREG(info.st_mode):
                problems.append(
                    Problem(rel, "not a regular file (sockets, devices and fifos are not packed)")
                )
                continue
            if "\\" in rel:
                problems.append(Problem(rel, "file names with backslashes are not portable"))
                continue
            entries.append(
                FileEntry(
                    path=rel,
                    location=location,
                    size=info.st_size,
                    stat_key=stat_key(info),
                )
            )
    entries.sort(key=lambda e: e.path.encode())
    problems.extend(_normalization_clashes(entries))
    return entries, problems


def _shown(path: str) -> str:
    """``path`` safe to print: undecodable bytes and control characters escaped."""
    return escape_controls(path)


def _bad_name(path: str) -> str | None:
    if not is_utf8(path):
        return "file name is not valid UTF-8; rename it (artifact paths are UTF-8)"
    if has_control(path):
        return "file name holds a control character (newline, tab, escape…); rename it"
    return None


def _link_target(link: Path, real_root: Path, patterns: list[str]) -> tuple[Path | None, str]:
    """The file a symlink resolves to when it stays inside the bundle, else (None, why it is refused)."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        return None, "broken symlink (its target does not exist, or it loops)"
    if not target.is_relative_to(real_root):
        return None, (
            "symlink pointing outside the bundle; links are packed only when they stay inside it "
            "(copy the file in instead)"
        )
    if target.is_dir():
        return None, "symlinked directories are not packed; copy the directory in instead"
    inside = target.relative_to(real_root).as_posix()
    if any(part.startswith(".") for part in inside.split("/")) or _ignored(inside, patterns):
        return None, f"symlink to {inside!r}, which is hidden or ignored and so is not packed"
    return target, ""


def _normalization_clashes(entries: list[FileEntry]) -> list[Problem]:
    """Names that differ only in Unicode normalization (NFC vs NFD) would be one file on macOS."""
    seen: dict[str, str] = {}
    problems: list[Problem] = []
    for entry in entries:
        key = unicodedata.normalize("NFC", entry.path)
        if key in seen:
            problems.append(
                Problem(
                    entry.path,
                    f"differs from {seen[key]!r} only in Unicode normalization (NFC/NFD); rename one of them",
                )
            )
        else:
            seen[key] = entry.path
    return problems
