"""How ``mloci serve`` reports a registry that failed: 503 when unreachable, 504 when it did not answer."""

from __future__ import annotations

from mloci.errors import TimedOutError, UnavailableError
from mloci.web.common import problem


def test_a_timeout_is_a_gateway_timeout_and_both_say_when_to_retry() -> None:
    timed_out = problem(TimedOutError("registry r.example timed out"))
    assert (timed_out.status, timed_out.code) == (504, "REGISTRY_TIMEOUT")
    down = problem(UnavailableError("cannot connect to registry r.example: connection refused"))
    assert (down.status, down.code) == (503, "REGISTRY_UNAVAILABLE")
    for item in (timed_out, down):
        assert item.headers == {"Retry-After": "5"}
    assert isinstance(TimedOutError("x"), UnavailableError) and TimedOutError.exit_code == 8
