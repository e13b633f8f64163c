"""Turning what a user typed into a :class:`Reference`, with ``$MLOCI_REGISTRY`` for short names."""

from __future__ import annotations

from mloci import settings
from mloci.store.archive import is_archive_reference, parse_archive_reference
from mloci.types.reference import Reference


def parse_reference(text: str) -> Reference:
    if is_archive_reference(text):  # oci-archive:PATH[:NAME][@DIGEST], read by mloci.store.archive
        return parse_archive_reference(text)
    return Reference.parse(text, default_registry=settings.default_registry())
