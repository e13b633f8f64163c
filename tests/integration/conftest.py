"""Fixtures shared by the package-index tests: an HTTP client and a real upstream index."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import urllib3
from pydists import PypiServer, running_pypiserver


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    """A plain client that neither retries nor follows redirects, so tests see each answer."""
    pool = urllib3.PoolManager(retries=False, timeout=30.0)
    try:
        yield pool
    finally:
        pool.clear()


@pytest.fixture
def pypi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PypiServer]:
    """pypiserver, a real third-party index, on 127.0.0.1 as the upstream."""
    with running_pypiserver(tmp_path_factory.mktemp("pypiserver")) as server:
        yield server
