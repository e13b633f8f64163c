"""Turning what a user typed into a :class:`Reference`, with ``$MLOCI_REGISTRY`` for short names."""

from __future__ import annotations

from mloci import settings
from mloci.types.reference import Reference


def parse_reference(text: str) -> Reference:
    return Reference.parse(text, default_registry=settings.default_registry())
