"""One URL per catalog page: a trailing slash redirects to the page (its forms post relative to it)."""

from __future__ import annotations

from pathlib import Path

import httpx
from catalog_helpers import SLOW, running_catalog
from helpers import Runner

from mloci.catalog import CatalogConfig


def test_a_trailing_slash_redirects_to_the_page(mloci: Runner, bundle: Path) -> None:
    assert mloci("push", bundle, "churn-model", "-q").exit_code == 0  # the local store
    with (
        running_catalog(CatalogConfig(refresh=0)) as server,
        httpx.Client(base_url=server.url, timeout=SLOW) as http,
    ):
        version = http.get("/api/v1/models/churn-model").json()["versions"][0]["version"]
        for page in ("/models/churn-model", f"/models/churn-model/versions/{version}"):
            moved = http.get(page + "/")
            assert moved.status_code == 308 and moved.headers["location"] == page, (page, moved.text)
            assert http.get(page + "/", follow_redirects=True).status_code == 200
        # Without the redirect the model page rendered at .../ and its forms posted to .../ /promote.
        assert (
            'action="/models/churn-model/promote"'
            in http.get("/models/churn-model/", follow_redirects=True).text
        )
