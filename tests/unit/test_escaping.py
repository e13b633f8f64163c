"""Text from a registry reaches the terminal through one escaper, mloci.types.text.escape_controls."""

from __future__ import annotations

import json

import pytest

from mloci.store import mirrors
from mloci.store.registry.transport import _oci_errors

HOSTILE = "denied\x1b]8;;https://evil.example\x07click\x1b]8;;\x07\r\n\tnext line \x9b2J \u202eevil"


def test_registry_error_messages_are_one_escaped_line() -> None:
    body = json.dumps({"errors": [{"code": "DENIED", "message": HOSTILE}]}).encode()
    codes, message = _oci_errors(body)
    assert codes == ["DENIED"]
    assert (
        message == "denied\\x1b]8;;https://evil.example\\x07click\\x1b]8;;\\x07 next line \\x9b2J \\u202eevil"
    )
    _, plain = _oci_errors(HOSTILE.encode())  # a proxy's plain-text answer
    assert plain == message


def test_registry_error_messages_are_bounded() -> None:
    _, message = _oci_errors(("x" * 1000).encode())
    assert len(message) == 300 and message.endswith("…")


def test_mirror_warnings_escape_what_the_mirror_said(capsys: pytest.CaptureFixture[str]) -> None:
    mirrors.warn(f"mirror m skipped: {HOSTILE}")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\x9b" not in err and "\u202e" not in err
    assert err.startswith("mloci: warning: mirror m skipped: denied\\x1b]8;;")
