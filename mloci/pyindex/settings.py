"""The upstream pass-through settings of a package index, importable without the server's dependencies."""

from __future__ import annotations

from typing import TypedDict


class UpstreamSettings(TypedDict, total=False):
    """IndexConfig's upstream fields (see :class:`mloci.pyindex.app.IndexConfig`)."""

    upstreams: tuple[str, ...]
    upstream_timeout: float
    upstream_cache_seconds: float
    redirect_upstream_files: bool
    cache_namespace: str | None
    upstream_ca_file: str | None
