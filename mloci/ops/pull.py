"""Pull: fetch an artifact's files into a directory, verified, all-or-nothing, idempotent.

Every blob is hashed while it streams into a staging directory on the target's
filesystem; only when all of them verified are they renamed into place, and the
marker ``.mloci/pull.json`` is written last. A failed or interrupted pull leaves the
target as it was. Pulling the digest a directory already holds is a no-op, so init
containers can restart freely. Bytes received from a registry survive even SIGKILL in a partial
file beside the target, from which the next pull resumes (:mod:`mloci.ops._partial`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import json
import os
import shutil
import stat
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloci import leftovers
from mloci.atomic import write_atomic
from mloci.errors import ConflictError, IntegrityError, MlociError, UsageError
from mloci.interrupts import deferred
from mloci.ops._mirror_resume import download_partial_via_mirrors, resumable_mirrors
from mloci.ops._parallel import CancelToken, run_all
from mloci.ops._partial import Partial, clean_partials, partial_dir, ranged_chunks, worth_keeping
from mloci.ops._ranged import MIN_RANGED_SIZE, RangesUnsupported, ServesRanges, ranged_download
from mloci.ops._tarextract import extract_all, extract_indexed, make_parents
from mloci.ops._writer import BackgroundWriter
from mloci.ops.progress import Silent, TransferListener
from mloci.store import Session, Store, mirrors, open_registry, read_small_blob, scoped
from mloci.store._prefetch import prefetch
from mloci.types import annotations as ann
from mloci.types import bundle_metadata, file_index, jsontext, mediatype
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest
from mloci.types.reference import Reference
from mloci.types.text import has_control

if TYPE_CHECKING:
    from mloci.ops.sign import VerifyResult
    from mloci.trust.keyless import IdentityRule

MARKER_DIR = ".mloci"
MARKER = f"{MARKER_DIR}/pull.json"
STAGING_PREFIX = ".mloci-staging-"
# Staging of mloci versions that did not name the owner is swept only once this old.
LEGACY_STAGING_AGE = 24 * 3600


@dataclass(frozen=True)
class FileLayer:
    """A layer of the artifact, with the path it unpacks to and its ModelPack kind."""

    path: str
    kind: str  # weight, weight.config, doc, code, dataset, or "file" for non-ModelPack layers
    packing: str  # raw, tar, tar+gzip
    descriptor: Descriptor
    files: tuple[str, ...] | None = None
    """For a tar layer with a file index: the files to extract (all, or those --filter chose); None: everything."""


@dataclass(frozen=True)
class PullResult:
    reference: Reference
    digest: Digest
    output: Path
    files: tuple[FileLayer, ...]
    bytes_downloaded: int
    unchanged: bool
    replaced: tuple[str, ...] = ()
    """Entries a previous pull had not written that ``force`` replaced (files and links, never directories)."""
    bytes_resumed: int = 0
    """Of ``bytes_downloaded``, those an earlier, interrupted pull had already received (not fetched again)."""
    verification: VerifyResult | None = None
    """The signature check that preceded the pull, when a key was required."""

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest),
            "output": str(self.output),
            "files": [
                {
                    "path": f.path,
                    "kind": f.kind,
                    "digest": str(f.descriptor.digest),
                    "size": f.descriptor.size,
                }
                for f in self.files
            ],
            "bytesDownloaded": self.bytes_downloaded,
            "bytesResumed": self.bytes_resumed,
            "unchanged": self.unchanged,
            "replaced": list(self.replaced),
            **({"verification": self.verification.to_json()} if self.verification else {}),
        }


def safe_path(path: str) -> str:
    """``path`` if it stays inside the target directory; IntegrityError otherwise."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or has_control(path)
        or any(p in ("", ".", "..") for p in parts)
        or parts[0] == MARKER_DIR
        or (len(path) > 1 and path[1] == ":")
    ):
        raise IntegrityError(
            f"refusing unsafe file path {path!r} in the artifact (absolute, '..', control characters, or reserved)"
        )
    return path


def layers_of(manifest: Manifest) -> list[FileLayer]:
    """Every file-bearing layer with a validated path; unsafe or clashing paths are refused."""
    layers: list[FileLayer] = []
    seen: set[str] = set()
    raw: set[str] = set()
    normalized: set[str] = set()
    for descriptor in manifest.layers:
        if descriptor.annotation(ann.ROLE) == file_index.ROLE_FILE_INDEX:
            continue  # metadata about tar layers (see _with_file_index), not a file to write
        if bundle_metadata.is_metadata_layer(descriptor):
            continue  # the normalized manifest: kept in the marker directory, not among the files
        path = descriptor.annotation(ann.MODEL_FILEPATH) or descriptor.annotation(ann.TITLE)
        if path is None:
            raise IntegrityError(
                f"layer {descriptor.digest} has no file path annotation ({ann.MODEL_FILEPATH} or {ann.TITLE})"
            )
        parsed = mediatype.parse_model_layer(descriptor.media_type)
        if parsed is not None:
            kind, packing = parsed
        elif descriptor.annotation(ann.ORAS_UNPACK) == "true":
            # ORAS marks tarred directories; its plain files carry tar media types but are raw.
            kind, packing = "file", "tar+gzip" if descriptor.media_type.endswith("gzip") else "tar"
        else:
            kind, packing = "file", "raw"
        if packing not in ("raw", "tar", "tar+gzip"):
            raise MlociError(f"layer {path!r} is packed as {packing!r}, which mloci cannot unpack yet")
        path = safe_path(path)
        # Names equal after NFC normalization are one file on macOS: treat them as a clash.
        if path in seen or unicodedata.normalize("NFC", path) in normalized:
            raise IntegrityError(f"the artifact holds {path!r} twice (or in two Unicode normalizations)")
        seen.add(path)
        normalized.add(unicodedata.normalize("NFC", path))
        if packing == "raw":
            raw.add(path)
        layers.append(FileLayer(path=path, kind=kind, packing=packing, descriptor=descriptor))
    for path in seen:
        parent = path.rpartition("/")[0]
        while parent:
            if parent in raw:
                raise IntegrityError(f"the artifact holds {parent!r} both as a file and as a directory")
            parent = parent.rpartition("/")[0]
    return layers


def _with_file_index(store: Store, repository: str, manifest: Manifest) -> list[FileLayer]:
    """``layers_of``, with each tar layer's files taken from mloci's file index when the artifact has one."""
    layers = layers_of(manifest)
    descriptor = file_index.index_layer(manifest)
    if descriptor is None:
        return layers
    index = file_index.parse_index(
        read_small_blob(store, repository, descriptor, limit=file_index.MAX_INDEX_SIZE)
    )
    result = []
    for layer in layers:
        files = index.get(layer.descriptor.digest) if layer.packing != "raw" else None
        if files is None:
            result.append(layer)
            continue
        paths = tuple(safe_path(f.path) for f in files)
        outside = next((p for p in paths if not p.startswith(layer.path + "/")), None)
        if outside is not None:
            raise IntegrityError(
                f"the file index puts {outside!r} in the tar layer of {layer.path!r}, outside it"
            )
        result.append(dataclasses.replace(layer, files=paths))
    raw = [layer.path for layer in layers if layer.packing == "raw"]
    for layer in result:  # a raw layer at a file or directory of a tar layer: decided here, not by timing
        for inside in (r for r in raw if layer.files and r.startswith(layer.path + "/")):
            hit = next((p for p in layer.files or () if p == inside or p.startswith(inside + "/")), None)
            if hit is not None:
                raise IntegrityError(
                    f"the artifact holds {inside!r} both as a layer and in a tar layer ({hit!r})"
                )
    return result


def select(layers: Sequence[FileLayer], filters: Sequence[str]) -> list[FileLayer]:
    """Layers matching any filter: a glob on the path (or file name), or a layer kind such as 'weight'."""
    if not filters:
        return list(layers)

    def matches(path: str, kind: str) -> bool:
        name = path.rsplit("/", maxsplit=1)[-1]
        return any(f == kind or fnmatch.fnmatchcase(path, f) or fnmatch.fnmatchcase(name, f) for f in filters)

    chosen = []
    for layer in layers:
        if matches(layer.path, layer.kind):
            chosen.append(layer)
        elif layer.files is not None:
            # A tar layer with a file index: extract just the files that match.
            wanted = tuple(p for p in layer.files if matches(p, layer.kind))
            if wanted:
                chosen.append(dataclasses.replace(layer, files=wanted))
    if not chosen:
        raise UsageError(f"--filter {' '.join(filters)} matches no file in the artifact")
    return chosen


def _read_marker(output: Path) -> dict[str, Any] | None:
    try:
        data = jsontext.loads((output / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _already_there(output: Path, digest: Digest, layers: Sequence[FileLayer]) -> bool:
    marker = _read_marker(output)
    if not marker or marker.get("digest") != str(digest):
        return False
    recorded = marker.get("layers")
    if not isinstance(recorded, list) or not all(isinstance(d, str) for d in recorded):
        return False
    if sorted(recorded) != sorted(str(layer.descriptor.digest) for layer in layers):
        return False
    for layer in layers:
        if layer.files is not None and not all((output / path).is_file() for path in layer.files):
            return False  # a file of a tar layer was removed since
        if layer.packing != "raw":
            continue
        target = output / layer.path
        if target.is_symlink() or not target.is_file() or target.stat().st_size != layer.descriptor.size:
            return False
    return True


def _write_blob(
    store: Store,
    repository: str,
    layer: FileLayer,
    staging: Path,
    listener: TransferListener,
    token: CancelToken,
    connections: int = 1,
    partials: Path | None = None,
    resumed: list[int] | None = None,
) -> list[str]:
    """Stream one layer into ``staging``; return the paths it created (relative).

    With ``partials`` (a registry source) the blob downloads through a partial file kept there
    across process restarts (:mod:`mloci.ops._partial`); bytes reused from it go to ``resumed``.
    """
    descriptor = layer.descriptor
    key = str(descriptor.digest)
    listener.started(key, layer.path, descriptor.size)
    if layer.files is not None:
        # mloci's own tar layer: only the files its index lists, written as the layer streams in.
        with store.open_blob(repository, descriptor) as chunks:
            created = extract_indexed(
                chunks, staging, layer.files, lambda n: listener.advance(key, n), token.check
            )
        listener.finished(key, skipped=False)
        return created
    target = staging / (layer.path if layer.packing == "raw" else f".blob-{descriptor.digest.encoded}")
    # Its directories are opened without following links: a tar layer may have made some.
    make_parents(staging, layer.path if layer.packing == "raw" else target.name)
    mirrored = resumable_mirrors(store)  # through registry mirrors: resumable as well
    ranged = isinstance(store, ServesRanges) or mirrored is not None
    partial = (
        Partial.open(partials, descriptor)
        if partials is not None and descriptor.size > 0 and ranged
        else None
    )
    if partial is not None and ranged:
        try:
            if isinstance(store, ServesRanges):
                reused = _download_partial(
                    store, store, repository, partial, lambda n: listener.advance(key, n), token, connections
                )
            elif mirrored is not None:  # the mirrors in order, then the origin (mloci.ops._mirror_resume)
                opened = partial

                def complete_from(source: Store, name: str, progress: Callable[[int], None]) -> int:
                    if not isinstance(source, ServesRanges):  # resumable_mirrors() let none through
                        raise AssertionError("a mirror that takes no Range")
                    return _download_partial(source, source, name, opened, progress, token, connections)

                reused = download_partial_via_mirrors(
                    mirrored, repository, partial, lambda n: listener.advance(key, n), complete_from
                )
            else:
                raise AssertionError("unreachable: ranged")
            partial.complete(target)
        except BaseException as exc:
            partial.close(keep=worth_keeping(exc))
            raise
        partial.close()
        if resumed is not None:
            resumed.append(reused)
    else:
        _download(store, repository, descriptor, target, listener, token, connections)
    listener.finished(key, skipped=False)
    if layer.packing == "raw":
        return [layer.path]
    try:
        return _untar(target, staging, token.check)
    finally:
        target.unlink(missing_ok=True)


def _download_partial(
    store: Store,
    http: ServesRanges,
    repository: str,
    partial: Partial,
    advance: Callable[[int], None],
    token: CancelToken,
    connections: int,
) -> int:
    """Complete ``partial`` from the registry and verify it; return how many bytes were reused.

    What an earlier run left is re-hashed and the rest fetched with ``Range``. When the digest
    then does not match (the partial was damaged on disk), it is discarded and the blob fetched
    once more from the start.
    """
    descriptor = partial.descriptor
    _preallocate(partial.fd, descriptor.size)
    for attempt in (1, 2):
        if connections > 1 and descriptor.size >= MIN_RANGED_SIZE:
            missing = partial.missing()
            reused = descriptor.size - sum(end - start for start, end in missing)
            try:
                ranged_download(
                    http,
                    repository,
                    descriptor,
                    partial.fd,
                    connections,
                    advance,
                    token,
                    missing=missing,
                    written=partial.written,
                )
                advance(reused)
                return reused
            except RangesUnsupported:
                pass  # one stream, below
            except IntegrityError:
                partial.discard()
                if reused == 0 or attempt == 2:
                    raise
                continue
        reused = partial.prefix()
        hasher = partial.hash_prefix(reused, token.check)
        received = reused
        os.lseek(partial.fd, reused, os.SEEK_SET)

        def on_written(count: int) -> None:
            nonlocal received
            partial.written(received, count)
            received += count

        if reused == 0:
            # From the start: the store's own stream (verified, resuming a dropped connection in-process).
            try:
                with (
                    store.open_blob(repository, descriptor) as chunks,
                    BackgroundWriter(partial.fd, on_written=on_written) as writer,
                ):
                    for chunk in chunks:
                        token.check()
                        writer.write(chunk)
                        advance(len(chunk))
            except IntegrityError:
                partial.discard()
                raise
            return 0
        chunks = prefetch(ranged_chunks(http.transport, http.registry, repository, descriptor, reused))
        advance(reused)
        # Written on a background thread while this one hashes the next chunk (mloci.ops._writer).
        try:
            with BackgroundWriter(partial.fd, on_written=on_written) as writer:
                for chunk in chunks:
                    token.check()
                    hasher.update(chunk)
                    writer.write(chunk)
                    advance(len(chunk))
        except IntegrityError:
            pass  # the registry's blob is shorter than its descriptor: try once more from the start
        if received == descriptor.size and hasher.hexdigest() == descriptor.digest.encoded:
            return reused
        partial.discard()  # damaged on disk (or by a power cut): fetch it all again
    raise AssertionError("unreachable: the second attempt starts from byte 0")


def _download(
    store: Store,
    repository: str,
    descriptor: Descriptor,
    target: Path,
    listener: TransferListener,
    token: CancelToken,
    connections: int,
) -> None:
    """Stream a blob into ``target`` (a new file), verified."""
    key = str(descriptor.digest)
    # O_EXCL|O_NOFOLLOW: never write through something that appeared in the staging dir.
    fd = os.open(
        target, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644
    )  # read back by ranged pulls
    _preallocate(fd, descriptor.size)
    with os.fdopen(fd, "wb") as handle:
        ranged = connections > 1 and descriptor.size >= MIN_RANGED_SIZE and isinstance(store, ServesRanges)
        if ranged and isinstance(store, ServesRanges):
            try:  # several byte ranges at once (pull --connections), verified once complete
                ranged_download(
                    store,
                    repository,
                    descriptor,
                    handle.fileno(),
                    connections,
                    lambda n: listener.advance(key, n),
                    token,
                )
            except RangesUnsupported:
                ranged = False
        if not ranged:
            # Written on a background thread while this one hashes the next chunk (mloci.ops._writer).
            with (
                store.open_blob(repository, descriptor) as chunks,
                BackgroundWriter(handle.fileno()) as writer,
            ):
                for chunk in chunks:
                    token.check()
                    writer.write(chunk)
                    listener.advance(key, len(chunk))


def _preallocate(fd: int, size: int) -> None:
    """Reserve the blob's space up front: a full disk fails before any byte is fetched, and
    the filesystem allocates one extent instead of growing the file a block at a time."""
    if size <= 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return  # the filesystem cannot preallocate; writing still works
        raise


def _untar(archive: Path, staging: Path, check: Callable[[], None] = lambda: None) -> list[str]:
    """Extract a verified tar layer that no file index describes (a ModelPack or ORAS tar, gzip or not).

    mloci's own extractor (:func:`mloci.ops._tarextract.extract_all`), with the rules of indexed
    layers: validated names, nothing written through a link (one this layer or another made),
    links kept only to a regular file of the same layer.
    """
    with archive.open("rb") as handle:
        chunks = iter(lambda: handle.read(1 << 20), b"")
        return extract_all(chunks, staging, safe_path, check)


def _sibling_prefix(output: Path) -> str:
    return f".{output.name}.mloci-"


def _distinct(paths: Sequence[str]) -> list[str]:
    """``paths`` sorted; IntegrityError when two layers (or two tar entries) write one file, which
    would leave whichever came last — also when the names differ only in Unicode normalization."""
    seen: dict[str, str] = {}
    for path in paths:
        key = unicodedata.normalize("NFC", path)
        if key in seen:
            raise IntegrityError(f"the artifact writes {path!r} twice (in two layers or tar entries)")
        seen[key] = path
    return sorted(paths)


@contextlib.contextmanager
def _staging(output: Path) -> Iterator[Path]:
    """A private directory on the target's filesystem, removed whatever happens.

    Its name carries this process's PID and it stays locked while we run, so a later pull can
    tell it from a live one's and sweep it if a SIGKILL left it behind (:func:`sweep_staging`).
    """
    if output.exists():
        parent, prefix = output, STAGING_PREFIX
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        parent, prefix = output.parent, _sibling_prefix(output)
    created: list[Path] = []
    lock: int | None = None
    try:
        # Deferred: a signal must not fall between creating the directory and knowing its name.
        with deferred():
            created.append(Path(tempfile.mkdtemp(prefix=leftovers.owned_prefix(prefix), dir=parent)))
        path = created[0]
        lock = leftovers.hold_path(path)
        if parent != output:
            # mkdtemp makes 0700; the published directory should look like any other one.
            path.chmod(0o755)
        yield path
    finally:
        for made in created:
            shutil.rmtree(made, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def sweep_staging(output: Path) -> list[Path]:
    """Remove staging that killed pulls into ``output`` left beside it or inside it; return what went."""
    legacy = time.time() - LEGACY_STAGING_AGE
    swept = leftovers.sweep(output.parent, (_sibling_prefix(output),), legacy_before=legacy)
    if output.is_dir() and not output.is_symlink():
        swept += leftovers.sweep(output, (STAGING_PREFIX,), legacy_before=legacy)
    return swept


def _owned_files(output: Path) -> set[str]:
    """The files a previous pull recorded in its marker; anything unsafe in a (hand-edited) marker is ignored."""
    marker = _read_marker(output)
    files = marker.get("files") if marker else None
    owned: set[str] = set()
    for path in files if isinstance(files, list) else []:
        if not isinstance(path, str):
            continue
        try:
            owned.add(safe_path(path))
        except IntegrityError:
            continue
    return owned


def _inside(output: Path, path: str) -> bool:
    """Whether every directory above ``output/path`` is a real directory, so acting on it stays in the tree."""
    current = output
    for part in path.split("/")[:-1]:
        current = current / part
        try:
            if not stat.S_ISDIR(current.lstat().st_mode):
                return False
        except FileNotFoundError:
            return True
    return True


def _clashes(output: Path, incoming: set[str], owned: set[str]) -> tuple[list[str], list[str]]:
    """What stands where the pull will write: (entries --force may replace, directories nothing replaces).

    Only the incoming file paths and the directories above them are looked at; an entry the
    previous pull wrote is not a clash. Directories are never replaced, with or without --force.
    """
    replaceable: set[str] = set()
    directories: set[str] = set()
    for path in incoming:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            name = "/".join(parts[:depth])
            try:
                mode = (output / name).lstat().st_mode
            except FileNotFoundError:
                break
            if stat.S_ISDIR(mode):
                if depth == len(parts) and not _only_owned(output, name, owned):
                    directories.add(name)
                continue
            if name not in owned:
                replaceable.add(name)
            break
    return sorted(replaceable), sorted(directories)


def _only_owned(output: Path, directory: str, owned: set[str]) -> bool:
    """Whether everything below ``output/directory`` was written by the previous pull."""
    for root, dirs, files in os.walk(output / directory):
        base = Path(root).relative_to(output).as_posix()
        links = [name for name in dirs if Path(root, name).is_symlink()]
        if any(f"{base}/{name}" not in owned for name in files + links):
            return False
    return True


def _only_partials(entry: Path) -> bool:
    """Whether ``entry`` is a marker directory holding nothing but a killed pull's partial downloads."""
    if entry.name != MARKER_DIR or entry.is_symlink() or not entry.is_dir():
        return False
    return {p.name for p in entry.iterdir()} <= {"partial"}


def _check_target(output: Path, incoming: set[str], *, force: bool) -> list[str]:
    """Refuse, before anything is downloaded, to write over what mloci did not write; return what --force replaces.

    ``incoming`` are the file paths the pull will create. Nothing outside them is ever touched.
    """
    present = [p for p in output.iterdir() if not p.name.startswith(STAGING_PREFIX) and not _only_partials(p)]
    if not present:
        return []
    marker = _read_marker(output)
    if marker is None and not force:
        raise ConflictError(
            f"{output} is not empty and was not written by 'mloci pull'",
            hint="choose an empty directory, or pass --force to add the files beside what is there "
            "(only entries with the same names are replaced)",
        )
    marker_dir = output / MARKER_DIR
    if marker_dir.is_symlink() or (marker_dir.exists() and not marker_dir.is_dir()):
        raise ConflictError(f"{marker_dir} exists and is not mloci's marker directory", hint="move it away")
    replaceable, directories = _clashes(output, incoming, _owned_files(output))
    if directories:
        raise ConflictError(
            f"{output} holds the directories {', '.join(directories)} where the artifact has files",
            hint="move them away; mloci never replaces a directory",
        )
    if replaceable and not force:
        raise ConflictError(
            f"{output} holds {', '.join(replaceable)}, which the previous pull did not write and this one would replace",
            hint="move them away, or pass --force",
        )
    return replaceable


def check_output_file(path: Path, what: str) -> None:
    """Refuse an output file that cannot be written, before anything else is written."""
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"the {what} {path} is a directory", hint="name a file")
    if not parent.is_dir():
        raise UsageError(
            f"the {what} {path} cannot be written: {parent} does not exist", hint="create it first"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"the {what} {path} cannot be written: permission denied on {parent}")


def pull(
    reference: Reference,
    output: Path,
    *,
    session: Session | None = None,
    filters: Sequence[str] = (),
    force: bool = False,
    listener: TransferListener | None = None,
    verify_key: Path | None = None,
    verify_identity: IdentityRule | None = None,
    trusted_root: Path | None = None,
    digest_file: Path | None = None,
    connections: int = 1,
) -> PullResult:
    """Fetch ``reference`` into ``output``; see the module docstring for the guarantees.

    With ``verify_key`` a signature by that key must bind the artifact before anything is
    downloaded, and exactly the digest it binds is pulled (a tag moved meanwhile cannot slip
    other content in). ``verify_identity`` does the same for keyless signatures (checked against
    ``trusted_root``). ``digest_file`` receives the pulled digest, written atomically.

    Registry mirrors configured in registries.conf are tried first (:mod:`mloci.store.mirrors`);
    when one fails after data began to flow (wrong bytes), the pull is repeated from the origin.
    """
    if digest_file is not None:
        check_output_file(digest_file, "digest file")  # before anything is fetched or written
    with scoped(session) as active:
        verification: VerifyResult | None = None
        if verify_key is not None or verify_identity is not None:
            from mloci.ops.sign import verify  # noqa: PLC0415  (cryptography only when verifying)

            verification = verify(
                reference, verify_key, identity=verify_identity, trusted_root=trusted_root, session=active
            )
            reference = verification.reference  # pinned to the digest whose signature verified
        mirrored = _mirrored(active, reference)
        try:
            result = _pull(
                reference,
                output,
                active,
                filters,
                force,
                listener or Silent(),
                store=mirrored,
                connections=connections,
            )
        except mirrors.MirrorFailure as exc:
            mirrors.warn(f"{exc}; pulling again from {reference.registry}")
            result = _pull(
                reference, output, active, filters, force, listener or Silent(), connections=connections
            )
        finally:
            if mirrored is not None:
                mirrored.close()  # the mirrors' connections; the origin belongs to the session
        if digest_file is not None:
            try:
                write_atomic(digest_file, f"{result.digest}\n".encode())
            except OSError as exc:
                raise MlociError(
                    f"cannot write the digest file {digest_file}: {exc.strerror or exc}"
                ) from exc
        return dataclasses.replace(result, verification=verification)


def _mirrored(session: Session, reference: Reference) -> mirrors.MirroredStore | None:
    """The session's store for ``reference`` read through the mirrors registries.conf configures; None without."""
    if reference.registry is None:
        return None

    def open_mirror(host: str, insecure: bool) -> Store:
        options = session.options
        return open_registry(host, dataclasses.replace(options, insecure=options.insecure or insecure))

    store = mirrors.with_mirrors(session.store(reference), reference, open_mirror)
    return store if isinstance(store, mirrors.MirroredStore) else None


def _pull(
    reference: Reference,
    output: Path,
    session: Session,
    filters: Sequence[str],
    force: bool,
    listener: TransferListener,
    *,
    store: Store | None = None,
    connections: int = 1,
) -> PullResult:
    store = store or session.store(reference)
    try:
        descriptor, data = store.fetch_manifest(reference)
        if descriptor.media_type in mediatype.INDEX_TYPES:
            raise UsageError(f"{reference} is an image index; pull one of its manifests by digest")
        manifest = Manifest.from_json(data)
        layers = select(_with_file_index(store, reference.repository, manifest), filters)
        pinned = reference.pinned(descriptor.digest)
        sweep_staging(output)
        # The normalized bundle manifest, when it travels apart from the user's manifest.json
        # (mloci.types.bundle_metadata): kept beside the marker, so the directory re-packs identically.
        metadata_descriptor = bundle_metadata.metadata_layer(manifest)
        kept = metadata_descriptor is None or (output / bundle_metadata.PULLED_METADATA).is_file()
        if output.is_dir() and kept and _already_there(output, descriptor.digest, layers):
            return PullResult(pinned, descriptor.digest, output, tuple(layers), 0, True, ())
        if output.exists() and not output.is_dir():
            raise ConflictError(f"{output} exists and is not a directory")
        # Decide before downloading anything whether the target may be written; tar layers'
        # files are known only after extraction and are checked again before anything moves.
        incoming = {layer.path for layer in layers if layer.packing == "raw"}
        incoming.update(path for layer in layers for path in layer.files or ())
        replaced = _check_target(output, incoming, force=force) if output.is_dir() else []
        metadata = (
            read_small_blob(store, reference.repository, metadata_descriptor)
            if metadata_descriptor is not None
            else None
        )

        partials = partial_dir(output)  # kept across restarts; removed once the pull is published
        resumed: list[int] = []
        try:
            try:
                with _staging(output) as staging:
                    listener.begin(sum(layer.descriptor.size for layer in layers), len(layers))
                    try:
                        created_per_layer = run_all(
                            lambda layer, token: _write_blob(
                                store,
                                reference.repository,
                                layer,
                                staging,
                                listener,
                                token,
                                connections,
                                partials,
                                resumed,
                            ),
                            layers,
                            session.options.concurrency,
                        )
                    finally:
                        listener.end()
                    created = _distinct([p for paths in created_per_layer for p in paths])
                    marker = {
                        "reference": str(pinned),
                        "digest": str(descriptor.digest),
                        "layers": sorted(str(layer.descriptor.digest) for layer in layers),
                        "files": created,
                    }
                    # SIGINT/SIGTERM wait for the renames: the target ends with the old files or the new.
                    with deferred():
                        replaced = _move_into_place(
                            staging, output, created, marker, force=force, metadata=metadata
                        )
                clean_partials(partials)
            except BaseException:
                with contextlib.suppress(OSError):
                    partials.rmdir()  # only when empty: a failed pull keeps nothing but resumable bytes
                    if partials.parent.name == MARKER_DIR:
                        partials.parent.rmdir()  # made for it (an existing target that had no marker)
                raise
        except OSError as exc:
            # Disk full, permissions, read-only mounts: say so plainly; staging is already removed.
            reason = exc.strerror or type(exc).__name__
            raise MlociError(
                f"cannot write into {output}: {reason}", hint="nothing was changed there"
            ) from exc
        return PullResult(
            pinned,
            descriptor.digest,
            output,
            tuple(layers),
            sum(layer.descriptor.size for layer in layers),
            False,
            tuple(replaced),
            sum(resumed),
        )
    except OSError as exc:
        # An unreadable or unwritable target, found before anything was written.
        raise MlociError(
            f"cannot use {output}: {exc.strerror or exc}", hint="nothing was changed there"
        ) from exc


def _write_marker(directory: Path, marker: dict[str, Any], metadata: bytes | None = None) -> None:
    (directory / MARKER_DIR).mkdir(exist_ok=True)
    kept = directory / bundle_metadata.PULLED_METADATA
    if metadata is None:
        kept.unlink(missing_ok=True)  # mloci's own file, of the previous pull
    else:
        staged = kept.with_name(kept.name + ".tmp")
        staged.write_bytes(metadata)
        staged.replace(kept)
    tmp = directory / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(directory / MARKER)


def _move_into_place(
    staging: Path,
    output: Path,
    created: Sequence[str],
    marker: dict[str, Any],
    *,
    force: bool,
    metadata: bytes | None = None,
) -> list[str]:
    """Publish the staged files; return the entries mloci had not written that --force replaced."""
    if staging.parent != output:
        # The target did not exist: one atomic rename publishes everything.
        _write_marker(staging, marker, metadata)
        staging.rename(output)
        return []
    # The target exists (perhaps a mount point that cannot be replaced): move file by file.
    # Only the files this pull writes and the files the previous pull recorded are touched.
    new = set(created)
    replaced = _check_target(output, new, force=force)
    owned = _owned_files(output)
    # A crash from here on leaves a marker that owns both generations, so the next pull can finish.
    _write_marker(output, {"digest": None, "files": sorted(owned | new), "incomplete": True})
    for path in sorted(owned - new):
        target = output / path
        if _inside(output, path) and (target.is_symlink() or target.is_file()):
            target.unlink()
            _prune_empty_parents(output, path)
    for path in sorted(new):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = output.joinpath(*parts[:depth])
            if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
                parent.unlink()  # a file or link the checks above allowed to go
        (output / path).parent.mkdir(parents=True, exist_ok=True)
        (staging / path).replace(output / path)
    _write_marker(output, marker, metadata)
    return replaced


def _prune_empty_parents(output: Path, path: str) -> None:
    parent = (output / path).parent
    while parent != output:
        try:
            parent.rmdir()
        except OSError:
            return  # not empty (or not ours to remove): stop
        parent = parent.parent
