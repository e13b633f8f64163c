"""Promote and roll back from the model page's forms: CSRF tokens, the caller's credentials, policy refusals.

The registry is a real distribution with token auth; the server reads with alice's credentials and
must never write with them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_fixtures import TokenRegistry
from catalog_helpers import SLOW, populate, running_catalog
from helpers import Runner
from pydists import IndexServer

from mloci.catalog import CatalogConfig

ALICE = ("alice", "wonderland-secret")
BOB = ("bob", "builder-secret")
PAGE = "/models/churn-model"


@pytest.fixture
def served(
    token_registry: TokenRegistry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[IndexServer]:
    monkeypatch.setenv("MLOCI_USERNAME", ALICE[0])
    monkeypatch.setenv("MLOCI_PASSWORD", ALICE[1])
    populate(mloci, tmp_path, f"{token_registry.registry.host}/ml/")
    policy = tmp_path / "prod-policy.yaml"
    policy.write_text("metrics: ['auc >= 0.9']\nrequire: [sbom]\n")
    config = CatalogConfig(registry=token_registry.registry.host, namespace="ml", refresh=0)
    with running_catalog(config, policies={"prod": policy}) as server:
        yield server


def _token(http: httpx.Client) -> str:
    page = http.get(PAGE)
    assert page.status_code == 200, page.text
    assert (
        "mloci_csrf" in page.headers["set-cookie"] and "samesite=strict" in page.headers["set-cookie"].lower()
    )
    assert "httponly" in page.headers["set-cookie"].lower()
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "the model page has no promote form"
    return html.unescape(found[1])


def _environments(http: httpx.Client) -> dict[str, str]:
    return dict(http.get("/api/v1/models/churn-model").json()["model"]["environments"])


def test_promote_and_roll_back_from_the_model_page(served: IndexServer) -> None:
    with httpx.Client(base_url=served.url, timeout=SLOW) as http:
        token = _token(http)
        page = http.get(PAGE).text
        assert 'action="/models/churn-model/promote"' in page and "Roll back prod" in page
        form = {"csrf": token, "to": "staging", "reference": "1.0.0", "reason": "from the page"}

        # No credentials: a Basic challenge (the browser asks), and nothing moves.
        anonymous = http.post(f"{PAGE}/promote", data=form)
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
        assert _environments(http)["staging"] == "1.2.0"

        done = http.post(f"{PAGE}/promote", data=form, auth=ALICE)
        assert done.status_code == 200, done.text
        assert "staging" in done.text and "now points at" in done.text
        assert _environments(http)["staging"] == "1.0.0"
        record = http.get("/api/v1/models/churn-model/history").json()["history"][0]
        assert (record["actor"], record["reason"]) == ("alice", "from the page")
        assert record.get("ciRunUrl") is None  # the server's own CI environment is never recorded

        back = http.post(f"{PAGE}/rollback", data={"csrf": token, "environment": "staging"}, auth=ALICE)
        assert back.status_code == 200, back.text
        assert _environments(http)["staging"] == "1.2.0"

        # bob may only read: the registry refuses his write, the server never borrows alice's.
        refused = http.post(f"{PAGE}/promote", data=form, auth=BOB)
        assert refused.status_code in (401, 403), refused.text
        assert _environments(http)["staging"] == "1.2.0"


def test_forms_without_a_valid_token_or_from_another_site_are_refused(served: IndexServer) -> None:
    with httpx.Client(base_url=served.url, timeout=SLOW, auth=ALICE) as http:
        token = _token(http)
        form = {"to": "staging", "reference": "1.0.0"}
        attempts = {
            "no token": http.post(f"{PAGE}/promote", data=form),
            "forged token": http.post(f"{PAGE}/promote", data={**form, "csrf": "abc.def"}),
            "another origin": http.post(
                f"{PAGE}/promote", data={**form, "csrf": token}, headers={"Origin": "https://evil.example"}
            ),
            "cross-site": http.post(
                f"{PAGE}/promote", data={**form, "csrf": token}, headers={"Sec-Fetch-Site": "cross-site"}
            ),
            "an opaque origin": http.post(
                f"{PAGE}/promote", data={**form, "csrf": token}, headers={"Origin": "null"}
            ),
        }
        # A cross-site form sends no SameSite=Strict cookie: the token alone is not enough.
        with httpx.Client(base_url=served.url, timeout=SLOW, auth=ALICE) as other:
            attempts["token without the cookie"] = other.post(f"{PAGE}/promote", data={**form, "csrf": token})
        for what, response in attempts.items():
            assert response.status_code == 403, (what, response.text)
            assert "Traceback" not in response.text
        assert _environments(http)["staging"] == "1.2.0"
        same = http.post(
            f"{PAGE}/promote",
            data={**form, "csrf": token},
            headers={"Origin": served.url, "Sec-Fetch-Site": "same-origin"},
        )
        assert same.status_code == 200, same.text


def test_a_refusal_names_each_failed_policy_rule(served: IndexServer) -> None:
    with httpx.Client(base_url=served.url, timeout=SLOW, auth=ALICE) as http:
        token = _token(http)
        refused = http.post(f"{PAGE}/promote", data={"csrf": token, "to": "prod", "reference": "1.0.0"})
        assert refused.status_code == 403, refused.text
        rules = re.findall(r"<li><b>([^<]+)</b>:", refused.text)
        assert any("auc" in r for r in rules) and any("sbom" in r for r in rules), refused.text
        assert _environments(http)["prod"] == "1.1.0"


def test_read_only_server_shows_no_forms(
    token_registry: TokenRegistry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOCI_USERNAME", ALICE[0])
    monkeypatch.setenv("MLOCI_PASSWORD", ALICE[1])
    populate(mloci, tmp_path, f"{token_registry.registry.host}/ml/")
    config = CatalogConfig(registry=token_registry.registry.host, namespace="ml", refresh=0)
    with (
        running_catalog(config, read_only=True) as server,
        httpx.Client(base_url=server.url, timeout=SLOW) as http,
    ):
        page = http.get(PAGE)
        assert page.status_code == 200 and 'name="csrf"' not in page.text
        refused = http.post(f"{PAGE}/promote", data={"to": "x", "reference": "1.0.0"}, auth=ALICE)
        assert refused.status_code == 403
