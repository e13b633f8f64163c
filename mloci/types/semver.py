"""SemVer 2.0 precedence, for ordering versions the way the spec (not string order) says."""

from __future__ import annotations

import re

SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


def is_semver(text: str) -> bool:
    return SEMVER.fullmatch(text) is not None


def sort_key(version: str) -> tuple[object, ...]:
    """Key ordering SemVer strings by precedence; non-SemVer strings sort first, by text."""
    match = SEMVER.fullmatch(version)
    if match is None:
        return (0, version)
    major, minor, patch, pre, _ = match.groups()
    # A release ranks above its pre-releases; numeric identifiers rank below alphanumeric ones.
    pre_key: tuple[object, ...] = (
        (1,) if pre is None else (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    )
    return (1, int(major), int(minor), int(patch), pre_key)


def is_version_tag(tag: str) -> bool:
    """Tags mloci treats as immutable: a SemVer version ('+' written '_'), optionally '-<git sha>'."""
    return is_semver(tag.replace("_", "+"))
