"""Resumable downloads through registry mirrors (:mod:`mloci.store.mirrors`).

A pull through a mirror downloads each blob into a partial file kept across process restarts,
as a pull from the registry itself does (:mod:`mloci.ops._partial`): the mirrors are asked in
order, with ``Range`` for what is missing, then the origin. A mirror that ignores ``Range`` (a
pull-through cache still fetching the blob upstream answers ``200`` with the whole blob) costs
reading the bytes already here once more, but the partial is still completed, never restarted.

A mirror that is down, lacks the blob or breaks off is skipped with a warning and the next one
(at last the origin) continues the same partial from where it stopped: every byte is verified
against the digest once the blob is complete, whichever server sent it. A mirror whose bytes do
not match the digest is refused as :class:`~mloci.store.mirrors.MirrorFailure`, so the whole pull
is repeated from the origin, exactly as without partials.
"""

from __future__ import annotations

from collections.abc import Callable

from mloci.errors import IntegrityError, MlociError
from mloci.ops._parallel import Cancelled
from mloci.ops._partial import Partial
from mloci.ops._ranged import ServesRanges
from mloci.store.base import Store
from mloci.store.mirrors import MirroredStore, MirrorFailure

# Completes the partial from one source (``mloci.ops.pull._download_partial`` bound to the partial):
# (source, repository there, progress) -> bytes an earlier run had left that were used.
CompleteFrom = Callable[[Store, str, Callable[[int], None]], int]


def resumable_mirrors(store: Store) -> MirroredStore | None:
    """``store`` when it reads through mirrors that, like its origin, all take ``Range``; else None."""
    if not isinstance(store, MirroredStore) or not isinstance(store.origin, ServesRanges):
        return None
    if not all(isinstance(candidate, ServesRanges) for _, candidate, _, _ in store.candidates):
        return None
    return store


def download_partial_via_mirrors(
    store: MirroredStore,
    repository: str,
    partial: Partial,
    advance: Callable[[int], None],
    complete_from: CompleteFrom,
) -> int:
    """Complete ``partial`` from the first source that serves it: the mirrors in order, then the
    origin. Returns how many bytes an earlier run had left that were used (not those a mirror that
    broke off sent in this one)."""
    initial = partial.descriptor.size - sum(end - start for start, end in partial.missing())
    shown = 0  # bytes already reported to ``advance``: a source taking over repeats none of them

    for location, source, name in store.sources(repository, partial.descriptor):
        seen = 0

        def once(count: int) -> None:
            nonlocal seen, shown
            seen += count
            if seen > shown:
                advance(seen - shown)
                shown = seen

        if location is None:
            return min(initial, complete_from(source, name, once))
        try:
            return min(initial, complete_from(source, name, once))
        except Cancelled:
            raise
        except IntegrityError as exc:
            raise MirrorFailure(f"mirror {location}: {exc}") from exc
        except MlociError as exc:
            store.skip(location, exc)  # the partial keeps what arrived; the next source goes on from there
    raise AssertionError("unreachable: the origin is always the last source")
