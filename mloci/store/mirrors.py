"""Registry mirrors and pull-through caches, configured the way podman and CRI-O are.

mloci reads ``containers-registries.conf`` version 2 — ``$MLOCI_REGISTRIES_CONF`` when set, else
``$XDG_CONFIG_HOME/containers/registries.conf`` (``~/.config/…``), else
``/etc/containers/registries.conf`` — so the file a node already has works unchanged::

    [[registry]]
    prefix = "registry.example.com/ml"    # optional; defaults to location
    location = "registry.example.com/ml"
    insecure = false

    [[registry.mirror]]
    location = "mirror.internal:5000/ml"
    insecure = true                        # plain HTTP or unverified TLS allowed
    pull-from-mirror = "all"               # or "digest-only" / "tag-only"

The ``[[registry]]`` entry whose ``prefix`` is the longest match of a reference (``*.example.com``
wildcards included) applies. A pull then asks each mirror in order, the matched prefix replaced
by the mirror's location, before the origin. Every manifest and blob is verified against the same
digests as from the origin, so a mirror can make a pull faster but never change what it gets: a
mirror that is down, lacks the content or answers with errors is skipped with a warning on
stderr; one that serves bytes that do not match is refused and the whole pull is repeated from the
origin (see :func:`mloci.ops.pull.pull`). Pushes, tags and deletes always go to the origin. A
``blocked = true`` registry is refused. ``location`` rewriting of the origin itself (a
``location`` other than the ``prefix``) is not applied: the origin is the registry the reference
names. Drop-in files (``registries.conf.d/*.conf``) are not read. A malformed file named by
``$MLOCI_REGISTRIES_CONF`` is a usage error; a malformed default file is reported once per pull and
ignored.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mloci.errors import IntegrityError, MlociError, UsageError
from mloci.store.base import BlobOutcome, Progress, Store
from mloci.types.blob import Blob
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor
from mloci.types.reference import Reference
from mloci.types.text import escape_controls

SYSTEM_CONF = Path("/etc/containers/registries.conf")
T = TypeVar("T")


class MirrorFailure(IntegrityError):
    """A mirror failed after data had begun to flow (e.g. wrong bytes): the pull restarts from the origin."""


@dataclass(frozen=True)
class Mirror:
    location: str  # host[:port][/path]
    insecure: bool = False
    pull_from_mirror: str = "all"

    @property
    def host(self) -> str:
        return self.location.partition("/")[0]

    @property
    def path(self) -> str:
        return self.location.partition("/")[2]


@dataclass(frozen=True)
class RegistryEntry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Mirror, ...] = field(default_factory=tuple)


def config_path() -> Path | None:
    """The registries.conf in effect, or None when there is none."""
    explicit = os.environ.get("MLOCI_REGISTRIES_CONF")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(xdg) / "containers" / "registries.conf"
    if user.is_file():
        return user
    return SYSTEM_CONF if SYSTEM_CONF.is_file() else None


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"registries.conf: {where} must be true or false")
    return value


def _location(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(
            f"registries.conf: {where} must be a registry location such as 'mirror.internal:5000'"
        )
    text = value.strip().rstrip("/")
    if "://" in text:
        raise UsageError(
            f"registries.conf: {where} {text!r} must not include a scheme (write host[:port][/path])"
        )
    return text


def parse(text: str, source: str = "registries.conf") -> list[RegistryEntry]:
    """The ``[[registry]]`` entries of a v2 registries.conf; UsageError naming the problem otherwise."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source} is not valid TOML: {exc}") from None
    entries: list[RegistryEntry] = []
    registries = document.get("registry", [])
    if not isinstance(registries, list):
        raise UsageError(f"{source}: [[registry]] must be an array of tables (version 2 format)")
    for n, item in enumerate(registries):
        if not isinstance(item, dict):
            raise UsageError(f"{source}: registry[{n}] must be a table")
        where = f"registry[{n}]"
        location = _location(item["location"], f"{where}.location") if "location" in item else ""
        prefix = _location(item["prefix"], f"{where}.prefix") if "prefix" in item else location
        if not prefix:
            raise UsageError(f"{source}: {where} needs a location or a prefix")
        mirrors = []
        for m, raw in enumerate(item.get("mirror", [])):
            if not isinstance(raw, dict) or "location" not in raw:
                raise UsageError(f"{source}: {where}.mirror[{m}] needs a location")
            mode = raw.get("pull-from-mirror", "all")
            if mode not in ("all", "digest-only", "tag-only"):
                raise UsageError(
                    f"{source}: {where}.mirror[{m}].pull-from-mirror must be all, digest-only or tag-only"
                )
            mirrors.append(
                Mirror(
                    _location(raw["location"], f"{where}.mirror[{m}].location"),
                    _bool(raw.get("insecure", False), f"{where}.mirror[{m}].insecure"),
                    mode,
                )
            )
        entries.append(
            RegistryEntry(
                prefix,
                location or prefix,
                _bool(item.get("insecure", False), f"{where}.insecure"),
                _bool(item.get("blocked", False), f"{where}.blocked"),
                tuple(mirrors),
            )
        )
    return entries


def load(path: Path | None = None) -> list[RegistryEntry]:
    path = path or config_path()
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if os.environ.get("MLOCI_REGISTRIES_CONF"):
            raise UsageError(f"MLOCI_REGISTRIES_CONF names {path}, which does not exist") from None
        return []
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if os.environ.get("MLOCI_REGISTRIES_CONF"):
        return parse(text, str(path))
    try:
        return parse(text, str(path))
    except UsageError as exc:
        # A machine-wide file mloci was not pointed at must not break every pull: say so, use no mirrors.
        warn(f"{exc}; pulling without mirrors")
        return []


def _matches(prefix: str, name: str) -> bool:
    """containers-registries.conf prefix matching: whole path components, ``*.domain`` wildcards."""
    if prefix.startswith("*."):
        host = name.partition("/")[0]
        return fnmatch.fnmatchcase(host, prefix) and host != prefix[2:]
    return name == prefix or name.startswith(prefix + "/")


def match(entries: list[RegistryEntry], ref: Reference) -> tuple[RegistryEntry, str] | None:
    """The entry for ``ref`` (longest prefix) and the part of the name after the prefix ('' or 'ml/x')."""
    if ref.registry is None:
        return None
    name = f"{ref.registry}/{ref.repository}"
    best: RegistryEntry | None = None
    for entry in entries:
        if _matches(entry.prefix, name) and (best is None or len(entry.prefix) > len(best.prefix)):
            best = entry
    if best is None:
        return None
    if best.prefix.startswith("*."):
        return best, ref.repository
    return best, name[len(best.prefix) :].lstrip("/")


def warn(message: str) -> None:
    sys.stderr.write(f"mloci: warning: {escape_controls(message)}\n")
    sys.stderr.flush()


class MirroredStore:
    """Reads through mirrors in order, then the origin; writes go to the origin only."""

    def __init__(
        self, origin: Store, candidates: list[tuple[str, Store, Callable[[Reference], Reference], str]]
    ):
        # (mirror location, its store, how a reference maps onto it, pull-from-mirror)
        self.origin = origin
        self.candidates = candidates
        self._skipped: set[str] = set()

    @property
    def location(self) -> str:
        return self.origin.location

    def _mirrors_for(
        self, ref: Reference | None
    ) -> Iterator[tuple[str, Store, Callable[[Reference], Reference]]]:
        for location, store, mapping, mode in self.candidates:
            if location in self._skipped:
                continue
            if ref is not None and mode == "digest-only" and ref.digest is None:
                continue
            if ref is not None and mode == "tag-only" and ref.digest is not None:
                continue
            yield location, store, mapping

    def _read(self, ref: Reference | None, call: Callable[[Store, Reference | None], T]) -> T:
        for location, store, mapping in self._mirrors_for(ref):
            try:
                return call(store, mapping(ref) if ref is not None else None)
            except MlociError as exc:
                self._skipped.add(location)
                warn(f"mirror {location} skipped: {exc}; using {self.origin.location}")
        return call(self.origin, ref)

    def _repo(self, mapping: Callable[[Reference], Reference], repository: str) -> str:
        return mapping(Reference(None, repository)).repository

    # -- reads ------------------------------------------------------------------------------------

    def resolve(self, ref: Reference) -> Descriptor:
        return self._read(ref, lambda store, r: store.resolve(r or ref))

    def fetch_manifest(self, ref: Reference) -> tuple[Descriptor, bytes]:
        return self._read(ref, lambda store, r: store.fetch_manifest(r or ref))

    def has_blob(self, repository: str, digest: Digest) -> bool:
        return self.origin.has_blob(repository, digest)

    @contextlib.contextmanager
    def open_blob(self, repository: str, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        with contextlib.ExitStack() as stack:
            chunks: Iterator[bytes] | None = None
            for location, store, mapping in self._mirrors_for(
                Reference(None, repository, digest=descriptor.digest)
            ):
                try:
                    opened = stack.enter_context(store.open_blob(self._repo(mapping, repository), descriptor))
                except MlociError as exc:
                    self._skipped.add(location)
                    warn(f"mirror {location} skipped: {exc}; using {self.origin.location}")
                    continue
                chunks = _guarded(opened, location)
                break
            if chunks is None:
                chunks = stack.enter_context(self.origin.open_blob(repository, descriptor))
            yield chunks

    def sources(self, repository: str, descriptor: Descriptor) -> Iterator[tuple[str | None, Store, str]]:
        """Where ``descriptor``'s blob may be read, in order: (mirror location, its store, the
        repository as it names it) for each mirror not skipped yet, then (None, the origin, ``repository``).

        For readers that fetch the blob themselves (a resumed partial download asks for byte ranges).
        """
        for location, store, mapping in self._mirrors_for(
            Reference(None, repository, digest=descriptor.digest)
        ):
            yield location, store, self._repo(mapping, repository)
        yield None, self.origin, repository

    def skip(self, location: str, error: MlociError) -> None:
        """Stop asking the mirror at ``location`` during this pull, with a warning saying why."""
        self._skipped.add(location)
        warn(f"mirror {location} skipped: {error}; using {self.origin.location}")

    def list_tags(self, repository: str) -> list[str]:
        return self.origin.list_tags(repository)

    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        return self.origin.referrers(repository, digest, artifact_type)

    # -- writes: the origin only ------------------------------------------------------------------

    def push_manifest(self, ref: Reference, data: bytes, media_type: str) -> Descriptor:
        return self.origin.push_manifest(ref, data, media_type)

    def push_blob(self, repository: str, blob: Blob, progress: Progress | None = None) -> BlobOutcome:
        return self.origin.push_blob(repository, blob, progress)

    def delete_manifest(self, repository: str, digest: Digest) -> None:
        self.origin.delete_manifest(repository, digest)

    def close(self) -> None:
        """Close the mirrors' stores; the origin belongs to whoever opened it."""
        for _, store, _, _ in self.candidates:
            store.close()


def _guarded(chunks: Iterator[bytes], location: str) -> Iterator[bytes]:
    """A mirror's blob stream; a failure once bytes flowed becomes MirrorFailure (the pull restarts from the origin)."""
    try:
        yield from chunks
    except MirrorFailure:
        raise
    except MlociError as exc:
        raise MirrorFailure(f"mirror {location}: {exc}") from exc


def with_mirrors(
    origin: Store, ref: Reference, open_registry: Callable[[str, bool], Store], path: Path | None = None
) -> Store:
    """``origin`` wrapped so reads go through the mirrors registries.conf configures for ``ref``.

    ``open_registry(host, insecure)`` opens a mirror's store. Returns ``origin`` itself when no
    mirror applies. A ``blocked`` registry raises UsageError.
    """
    found = match(load(path), ref)
    if found is None:
        return origin
    entry, rest = found
    if entry.blocked:
        raise UsageError(
            f"{ref.registry} is blocked by {config_path()}", hint="unblock it there to pull from it"
        )
    if not entry.mirrors:
        return origin
    candidates: list[tuple[str, Store, Callable[[Reference], Reference], str]] = []
    for mirror in entry.mirrors:
        mapping = _Mapping(mirror, ref.repository, rest)
        candidates.append(
            (mirror.location, open_registry(mirror.host, mirror.insecure), mapping, mirror.pull_from_mirror)
        )
    return MirroredStore(origin, candidates)


@dataclass(frozen=True)
class _Mapping:
    """A reference of the origin as the mirror names it: the matched prefix replaced by the mirror's location."""

    mirror: Mirror
    repository: str  # the origin repository the pull is for
    rest: str  # that repository's name after the matched prefix

    def __call__(self, ref: Reference) -> Reference:
        tail = self.rest if ref.repository == self.repository else ref.repository
        repository = "/".join(p for p in (self.mirror.path, tail) if p)
        return Reference(self.mirror.host, repository, tag=ref.tag, digest=ref.digest)
