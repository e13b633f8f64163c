"""Walking a bundle directory: which files are packed, in which order, as which ModelPack layer kind."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

from mloci.bundle.manifest import MANIFEST_FILENAME, METRICS_FILENAME
from mloci.errors import Problem

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


@dataclass(frozen=True)
class FileEntry:
    """A regular file found in a bundle directory."""

    path: str  # POSIX path relative to the bundle root
    source: Path
    size: int


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
    skipped, as are paths matching ``.mlociignore``. Symlinks to files are packed as
    the file they point to; symlinked directories are refused rather than followed.
    """
    patterns = _ignore_patterns(root)
    entries: list[FileEntry] = []
    problems: list[Problem] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        keep = []
        for name in sorted(dirnames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if name.startswith(".") or name == "__pycache__" or _ignored(rel, patterns):
                continue
            if (base / name).is_symlink():
                problems.append(
                    Problem(rel, "symlinked directories are not packed; copy the directory in instead")
                )
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if name.startswith(".") or _ignored(rel, patterns):
                continue
            source = base / name
            try:
                info = source.stat()
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
            entries.append(FileEntry(path=rel, source=source, size=info.st_size))
    entries.sort(key=lambda e: e.path.encode())
    return entries, problems
