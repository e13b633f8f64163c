"""Checksum files ML teams already keep in bundles: ``sha256.txt`` and ``SHA256SUMS``.

Both are what ``sha256sum FILE… > sha256.txt`` writes: one ``<64 hex digits> <space><space or
'*'><path>`` line per file (``*`` marks binary mode, which changes nothing on POSIX), paths
relative to the bundle root, optionally starting with ``./``. A line that starts with ``\\`` holds
an escaped name (``\\\\`` and ``\\n``), as GNU coreutils writes for names with a backslash or a
newline. BSD-style lines (``SHA256 (path) = <hex>``, from ``sha256sum --tag``) are read too.
When a bundle holds such a file, every line must match the file it names, or the bundle is
invalid: a stale checksum file means the files are not the ones somebody checked.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mloci.errors import Problem
from mloci.types.digest import Digest

CHECKSUM_FILENAMES = ("sha256.txt", "SHA256SUMS")

_GNU = re.compile(r"(?P<escaped>\\?)(?P<hex>[0-9a-fA-F]{64}) (?P<mode>[ *])(?P<path>.+)")
_BSD = re.compile(r"(?P<escaped>\\?)SHA256 \((?P<path>.+)\) = (?P<hex>[0-9a-fA-F]{64})")
_MAX_SIZE = 16 << 20  # a checksum file larger than this is not one


@dataclass(frozen=True)
class Checksum:
    """One line of a checksum file: the bundle path it names and the expected SHA-256 (lowercase hex)."""

    source: str  # the checksum file, e.g. "sha256.txt"
    line: int
    path: str
    sha256: str


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def read_checksums(root: Path) -> tuple[list[Checksum], list[Problem]]:
    """Every line of the bundle's checksum files (those that exist), and what is malformed in them."""
    checksums: list[Checksum] = []
    problems: list[Problem] = []
    for name in CHECKSUM_FILENAMES:
        path = root / name
        if not path.is_file():
            continue
        try:
            if path.stat().st_size > _MAX_SIZE:
                problems.append(Problem(name, "larger than 16 MiB: not a sha256sum checksum file"))
                continue
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            problems.append(Problem(name, "not UTF-8 text"))
            continue
        except OSError as exc:
            problems.append(Problem(name, f"cannot read: {exc.strerror or exc}"))
            continue
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.rstrip("\r")
            if not line.strip():
                continue
            match = _GNU.fullmatch(line) or _BSD.fullmatch(line)
            if match is None:
                problems.append(
                    Problem(
                        f"{name}:{number}",
                        "not a sha256sum line; expected '<64 hex digits>  <path>' (as 'sha256sum FILE' writes)",
                    )
                )
                continue
            listed = match["path"]
            if match["escaped"]:
                listed = _unescape(listed)
            while listed.startswith("./"):
                listed = listed[2:]
            checksums.append(Checksum(name, number, listed, match["hex"].lower()))
    return checksums, problems


def verify_checksums(
    checksums: Iterable[Checksum],
    present: Mapping[str, Path],
    digest_of: Callable[[str], Digest],
) -> list[Problem]:
    """A problem for each checksum line whose file is missing from the bundle or has other content.

    ``present`` maps every packed bundle path to its file; ``digest_of`` gives a packed path's digest
    (hashing it, or looking up a digest the caller already computed).
    """
    problems: list[Problem] = []
    for item in checksums:
        where = f"{item.source}:{item.line}"
        if item.path not in present:
            problems.append(
                Problem(
                    where, f"{item.path!r} is listed but not in the bundle (or not packed: hidden or ignored)"
                )
            )
            continue
        try:
            digest = digest_of(item.path)
        except OSError as exc:
            problems.append(Problem(where, f"cannot read {item.path!r}: {exc.strerror or exc}"))
            continue
        if digest.algorithm != "sha256" or digest.encoded != item.sha256:
            problems.append(
                Problem(
                    where,
                    f"{item.path!r} does not match its checksum (file has sha256 {digest.encoded[:12]}…, listed "
                    f"{item.sha256[:12]}…); update {item.source} or restore the file",
                )
            )
    return problems


@contextlib.contextmanager
def hashing_lookup(present: Mapping[str, Path]) -> Iterator[Callable[[str], Digest]]:
    """``digest_of`` for :func:`verify_checksums` that hashes each file when asked, through the digest
    cache: a multi-GB file that ``push`` (or an earlier ``validate``) already hashed is not read again."""
    from mloci import settings  # noqa: PLC0415 - only bundles with checksum files pay for the cache
    from mloci.bundle.digests import default_cache  # noqa: PLC0415

    cache = default_cache(settings.home())
    hasher = cache.hasher()
    found: dict[str, Digest] = {}

    def digest_of(path: str) -> Digest:
        if path not in found:
            found[path] = hasher(present[path], path)[0]
        return found[path]

    try:
        yield digest_of
    finally:
        cache.close()
