"""Pieces of ``mloci serve``'s security that need no server: CSRF tokens, credential keys, sessions."""

from __future__ import annotations

from mloci.catalog.service import credentials_key
from mloci.store import Session, StoreOptions
from mloci.store.registry.auth import Credentials
from mloci.web import forms


def test_csrf_tokens_are_signed_by_this_process() -> None:
    nonce = "abcdef"
    token = f"{nonce}.{forms._sign(nonce)}"
    assert forms._valid(token)
    assert not forms._valid(f"{nonce}.{'0' * 32}")
    assert not forms._valid(f"other.{forms._sign(nonce)}")
    assert not forms._valid(None) and not forms._valid("") and not forms._valid("no-dot")
    assert not forms._valid("a." + "b" * 300)


def test_credentials_keys_hold_no_secret_and_tell_credentials_apart() -> None:
    alice = Credentials(username="alice", password="wonderland-secret")
    key = credentials_key(alice)
    assert "wonderland" not in key and "alice" not in key
    assert key == credentials_key(Credentials(username="alice", password="wonderland-secret"))
    assert key != credentials_key(Credentials(username="alice", password="other"))
    assert key != credentials_key(Credentials(identity_token="wonderland-secret"))


def test_a_session_with_credentials_opens_every_registry_with_them() -> None:
    alice = Credentials(username="alice", password="wonderland-secret")
    with Session(StoreOptions(timeout=3.0, retries=0), credentials=alice) as session:
        store = session.registry("127.0.0.1:9")  # nothing is contacted until a request
        assert store.transport.auth._credentials is alice
        assert store.transport.max_retries == 0
    with Session() as session:
        assert session.registry("127.0.0.1:9").transport.auth._credentials is None  # looked up lazily
