"""PEP 700 upload times: what a layer annotation or an upstream page may say, and what is served."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloci.errors import UsageError
from mloci.python.uploadtime import parse_time, push_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-02T03:04:05Z", "2025-01-02T03:04:05Z"),
        ("2025-01-02T03:04:05.000000Z", "2025-01-02T03:04:05Z"),
        ("2025-01-02T03:04:05.123456Z", "2025-01-02T03:04:05.123456Z"),
        ("2025-01-02T04:04:05+01:00", "2025-01-02T03:04:05Z"),
        ("2025-01-02T03:04:05", None),  # no time zone: not a moment
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_time(text: str | None, expected: str | None) -> None:
    assert parse_time(text) == expected


def test_source_date_epoch_wins_and_a_malformed_one_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert push_time(tmp_path, None) == "1970-01-01T00:00:00Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
        push_time(tmp_path, None)
