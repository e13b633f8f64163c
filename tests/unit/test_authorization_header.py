"""Credentials a client sends to mloci's servers (catalog, package index), read in one place."""

from __future__ import annotations

import base64

import pytest

from mloci.errors import AuthError
from mloci.store.registry.auth import Credentials


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_basic_and_bearer_credentials_pass_through() -> None:
    assert Credentials.from_authorization(basic("__token__:pypi-secret")) == Credentials(
        username="__token__", password="pypi-secret"
    )
    assert Credentials.from_authorization(basic("alice:with:colons")).password == "with:colons"
    assert Credentials.from_authorization("bearer  identity-token ") == Credentials(
        identity_token="identity-token"
    )


@pytest.mark.parametrize(
    "header",
    ["Digest abc", "Basic !!!", "Basic " + base64.b64encode(b"\xff:x").decode(), basic(":pw"), "Bearer "],
)
def test_unreadable_credentials_are_an_auth_error_that_never_echoes_them(header: str) -> None:
    with pytest.raises(AuthError) as caught:
        Credentials.from_authorization(header)
    assert "pw" not in str(caught.value) and "abc" not in str(caught.value)


def test_secrets_stay_out_of_repr() -> None:
    assert "pypi-secret" not in repr(Credentials.from_authorization(basic("__token__:pypi-secret")))
