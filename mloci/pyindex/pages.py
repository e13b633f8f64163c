"""The simple API documents: project list and project page, as HTML (PEP 503) and JSON (PEP 691)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Final
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from mloci.python.artifact import Release
from mloci.python.filenames import DistKind

# 1.1 (PEP 700): the JSON form lists "versions" and each file's "size".
API_VERSION: Final = "1.1"


@dataclass(frozen=True)
class FileLink:
    """One file on a project page; ``url`` is relative to the page (``/simple/<project>/``)."""

    filename: str
    version: str
    url: str
    sha256: str | None
    size: int | None  # None: unknown (an upstream page that does not say)
    requires_python: str | None
    metadata_sha256: str | None  # the PEP 658 .metadata file's hash; None: no .metadata served
    yanked: str | None  # None: not yanked; "" yanked without a reason
    other_hashes: tuple[tuple[str, str], ...] = ()  # more hashes an upstream published, preserved
    upload_time: str | None = None  # PEP 700, ISO 8601 (a registry file's layer annotation, docs/wheels.md)
    provenance: str | None = None  # PEP 740 provenance URL (an upstream's as it is, or this server's)

    @property
    def hashes(self) -> dict[str, str]:
        return {**({"sha256": self.sha256} if self.sha256 else {}), **dict(self.other_hashes)}


def file_url(project: str, version: str, filename: str) -> str:
    """Where a file is served, relative to the project page."""
    return f"../../packages/{quote(project, safe='')}/{quote(version, safe='')}/{quote(filename, safe='')}"


def provenance_url(project: str, version: str, filename: str) -> str:
    """Where a registry file's PEP 740 provenance is served, relative to the project page."""
    return f"../../provenance/{quote(project, safe='')}/{quote(version, safe='')}/{quote(filename, safe='')}"


def links(project: str, releases: Sequence[Release]) -> list[FileLink]:
    found = []
    for release in releases:
        for file in release.files:
            metadata = file.metadata
            found.append(
                FileLink(
                    filename=file.filename,
                    version=release.version,
                    url=file_url(project, release.version, file.filename),
                    sha256=file.sha256,
                    size=file.layer.size,
                    requires_python=file.requires_python,
                    metadata_sha256=metadata.digest.encoded
                    if file.kind is DistKind.WHEEL
                    and metadata is not None
                    and metadata.digest.algorithm == "sha256"
                    else None,
                    yanked=release.yanked,
                    upload_time=file.upload_time,
                )
            )
    return found


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _html(title: str, body: list[str]) -> str:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>{escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{escape(title)}</h1>",
        *(f"    {line}" for line in body),
        "  </body>",
        "</html>",
        "",
    ]
    return "\n".join(lines)


def project_list_html(projects: Sequence[str]) -> str:
    return _html(
        "Simple index", [f'<a href="{quote(name, safe="")}/">{escape(name)}</a><br>' for name in projects]
    )


def project_list_json(projects: Sequence[str]) -> bytes:
    return _json({"meta": {"api-version": API_VERSION}, "projects": [{"name": name} for name in projects]})


def project_html(project: str, files: Sequence[FileLink]) -> str:
    anchors = []
    for link in files:
        fragment = next(iter(link.hashes.items()), None)
        href = link.url + (f"#{fragment[0]}={fragment[1]}" if fragment else "")
        attributes = [f'href="{escape(href)}"']
        if link.requires_python:
            # PEP 503: '<' and '>' in the value must be written as entities; escape() does that (and quotes).
            attributes.append(f'data-requires-python="{escape(link.requires_python)}"')
        if link.metadata_sha256:
            # PEP 714's name, plus PEP 658's for older clients; the values must match.
            value = f"sha256={link.metadata_sha256}"
            attributes.append(f'data-core-metadata="{value}"')
            attributes.append(f'data-dist-info-metadata="{value}"')
        if link.yanked is not None:
            attributes.append(f'data-yanked="{escape(link.yanked)}"')
        if link.provenance:
            attributes.append(f'data-provenance="{escape(link.provenance)}"')
        anchors.append(f"<a {' '.join(attributes)}>{escape(link.filename)}</a><br>")
    return _html(f"Links for {project}", anchors)


def project_json(
    project: str,
    releases: Sequence[Release],
    files: Sequence[FileLink],
    *,
    versions: Sequence[str] | None = None,
) -> bytes:
    """The PEP 691 page; ``versions`` overrides the releases' (pages of upstream projects)."""
    entries: list[dict[str, Any]] = []
    for link in files:
        entry: dict[str, Any] = {"filename": link.filename, "url": link.url, "hashes": link.hashes}
        if link.size is not None:
            entry["size"] = link.size
        if link.upload_time:
            entry["upload-time"] = link.upload_time
        if link.requires_python:
            entry["requires-python"] = link.requires_python
        if link.metadata_sha256:
            # Only the PEP 714 key: pip < 23.2 fails on "dist-info-metadata" in JSON.
            entry["core-metadata"] = {"sha256": link.metadata_sha256}
        if link.yanked is not None:
            entry["yanked"] = link.yanked or True
        if link.provenance:
            entry["provenance"] = link.provenance
        entries.append(entry)
    listed = sorted({r.version for r in releases} | set(versions or ()), key=_version_key)
    # 1.1 promises every file's size; a page built from an upstream's HTML may not know them.
    api_version = API_VERSION if all(link.size is not None for link in files) else "1.0"
    return _json(
        {"meta": {"api-version": api_version}, "name": project, "versions": listed, "files": entries}
    )


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
