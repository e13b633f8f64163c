"""Pieces of ``mloci serve``'s security that need no server: CSRF tokens, credential keys, sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloci.catalog.service import credentials_key
from mloci.errors import UsageError
from mloci.store import Session, StoreOptions
from mloci.store.registry.auth import Credentials
from mloci.web import forms
from mloci.web.secret import random_secret, read_secret


def test_csrf_tokens_are_signed_with_the_servers_secret() -> None:
    nonce = "abcdef"
    secret, other = random_secret(), random_secret()
    token = f"{nonce}.{forms._sign(secret, nonce)}"
    assert forms._valid(secret, token)
    assert not forms._valid(other, token)  # another replica's (or a restarted server's) secret
    assert not forms._valid(secret, f"{nonce}.{'0' * 32}")
    assert not forms._valid(secret, f"other.{forms._sign(secret, nonce)}")
    assert not forms._valid(secret, None) and not forms._valid(secret, "")
    assert not forms._valid(secret, "no-dot") and not forms._valid(secret, "a." + "b" * 300)


def test_a_secret_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(b"k" * 40 + b"\n")
    good.chmod(0o600)
    assert read_secret(good) == b"k" * 40  # the newline an editor adds is not part of it
    good.chmod(0o604)
    with pytest.raises(UsageError, match="readable by every user"):
        read_secret(good)
    short = tmp_path / "short"
    short.write_bytes(b"k" * 31 + b"\n")
    short.chmod(0o600)
    with pytest.raises(UsageError, match="holds 31 bytes, at least 32"):
        read_secret(short)
    with pytest.raises(UsageError, match="not a regular file"):
        read_secret(tmp_path)
    with pytest.raises(UsageError, match="No such file"):
        read_secret(tmp_path / "missing")


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


def test_a_short_secret_from_python_is_refused() -> None:
    from mloci.catalog import CatalogConfig
    from mloci.web import ServeConfig, create_app

    with pytest.raises(UsageError, match="at least 32 bytes"):
        create_app(ServeConfig(catalog=CatalogConfig(), secret=b"short"))
