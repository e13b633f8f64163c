"""Choosing the simple API serialization from the ``Accept`` header (PEP 691 content negotiation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

JSON_V1: Final = "application/vnd.pypi.simple.v1+json"
HTML_V1: Final = "application/vnd.pypi.simple.v1+html"
TEXT_HTML: Final = "text/html"
# What each served type also answers to: "latest" is v1 here; text/html is an alias of v1+html.
_NAMES: Final = {
    JSON_V1: (JSON_V1, "application/vnd.pypi.simple.latest+json"),
    HTML_V1: (HTML_V1, "application/vnd.pypi.simple.latest+html"),
    TEXT_HTML: (TEXT_HTML,),
}
# On equal quality: JSON, then the explicit HTML type; the legacy text/html only as a last resort.
OFFERED: Final = (JSON_V1, HTML_V1, TEXT_HTML)


@dataclass(frozen=True)
class _Range:
    type: str
    subtype: str
    quality: float


def _parse(accept: str) -> list[_Range]:
    ranges = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        kind, slash, subtype = media.lower().partition("/")
        if not slash or not kind or not subtype:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = -1.0
        if 0.0 <= quality <= 1.0:
            ranges.append(_Range(kind, subtype, quality))
    return ranges


def _quality(offered: str, ranges: list[_Range]) -> float:
    """The quality of the most specific range matching ``offered`` (0 when none does)."""
    best_specificity = 0
    quality = 0.0
    for name in _NAMES[offered]:
        kind, _, subtype = name.partition("/")
        for r in ranges:
            if r.type == kind and r.subtype == subtype:
                specificity = 3
            elif r.type == kind and r.subtype == "*":
                specificity = 2
            elif r.type == "*" and r.subtype == "*":
                specificity = 1
            else:
                continue
            if specificity > best_specificity or (specificity == best_specificity and r.quality > quality):
                best_specificity, quality = specificity, r.quality
    return quality


def choose(accept: str | None, format_param: str | None = None) -> str | None:
    """The content type to answer with, or None when nothing acceptable is served (answer 406).

    ``format_param`` is the optional ``?format=`` URL parameter, which takes precedence. A missing
    ``Accept`` header counts as ``*/*``.
    """
    if format_param:
        return next((offered for offered in OFFERED if format_param.strip().lower() in _NAMES[offered]), None)
    ranges = _parse(accept or "*/*")
    chosen: str | None = None
    chosen_quality = 0.0
    for offered in OFFERED:
        quality = _quality(offered, ranges)
        if quality > chosen_quality:
            chosen, chosen_quality = offered, quality
    return chosen
