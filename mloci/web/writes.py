"""Writes through the API: promote and roll back, as the caller, behind CSRF checks and policies.

A write always uses the credentials the caller sent (HTTP Basic, or ``Authorization: Bearer`` with
a registry identity token) — the server's own are never used for one. Requests must be JSON
(``Content-Type: application/json``), which an HTML form on another site cannot send without a CORS
preflight this server never grants, and a browser's ``Origin``/``Sec-Fetch-Site`` must name this
server: together they stop cross-site request forgery, including with Basic credentials a browser
remembers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mloci.catalog import _ops
from mloci.errors import UsageError
from mloci.store import Session
from mloci.store.registry.auth import Credentials
from mloci.web.api import PREFIX
from mloci.web.common import Forbidden, PolicyRefused, State, state_of

_MAX_BODY = 64 << 10


def check_same_origin(request: Request) -> None:
    """Forbidden unless the request is JSON and, when a browser says where it came from, from here."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Forbidden("writes take a JSON body (Content-Type: application/json)", "CSRF")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden(f"cross-site request refused (Sec-Fetch-Site: {site})", "CSRF")
    origin = request.headers.get("origin")
    if origin is not None:
        expected = f"{request.url.scheme}://{request.url.netloc}"
        if origin.rstrip("/") != expected:
            raise Forbidden("cross-origin request refused (the Origin is not this server)", "CSRF")


async def _body(request: Request) -> dict[str, Any]:
    data = await request.body()
    if len(data) > _MAX_BODY:
        raise UsageError("the request body is too large")
    try:
        document = json.loads(data or b"{}")
    except ValueError:
        raise UsageError("the request body is not JSON") from None
    if not isinstance(document, dict):
        raise UsageError("the request body must be a JSON object")
    return document


def _text(document: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = document.get(key)
    if value is None:
        if required:
            raise UsageError(f"the request body needs {key!r}")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 1000:
        raise UsageError(f"{key!r} must be a non-empty string")
    return value.strip()


def _actor(state: State, creds: Credentials | None) -> str | None:
    """Who the promotion record names: the caller the registry authenticated (None: the user
    running the server — always for the local store, which checks no credentials, so a name
    a caller merely claims is never recorded)."""
    if creds is None or state.catalog.config.registry is None:
        return None
    return creds.username or "identity-token holder"


def _gate(state: State, environment: str) -> Callable[[Session], _ops.Gate] | None:
    """The environment's policy as a gate reading with the caller's session; it names every failed rule."""
    path = state.policies.get(environment)
    if path is None:
        return None

    def bind(session: Session) -> _ops.Gate:
        def gate(reference: _ops.Reference, descriptor: _ops.Descriptor) -> None:
            report = _ops.check_policy(path, reference.pinned(descriptor.digest), session)
            if not report.passed:
                failures = [{"rule": r.rule, "detail": r.detail} for r in report.failures]
                names = "; ".join(f"{f['rule']} ({f['detail']})" for f in failures)
                raise PolicyRefused(f"the {environment} policy refused {reference}: {names}", failures)

        return gate

    return bind


async def _prepare(request: Request) -> tuple[State, Credentials | None, dict[str, Any]]:
    state = state_of(request)
    if state.read_only:
        raise Forbidden("this server is read-only", "READ_ONLY")
    check_same_origin(request)
    # With --require-auth even the local store (which takes no credentials) needs accepted ones.
    creds = await run_in_threadpool(state.check_caller, request)
    return state, creds, await _body(request)


def _answer(result: _ops.PromotionResult) -> Response:
    body = json.dumps(result.to_json()).encode()
    return Response(
        body, status_code=200, media_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def promote_as_caller(
    state: State, creds: Credentials | None, name: str, ref: str, environment: str, reason: str | None
) -> _ops.PromotionResult:
    """A promotion for the API and the forms alike: the caller's credentials, the environment's gate."""
    return await run_in_threadpool(
        lambda: state.catalog.promote(
            name,
            ref,
            environment,
            creds=creds,
            actor=_actor(state, creds),
            reason=reason,
            gate=_gate(state, environment),
        )
    )


async def rollback_as_caller(
    state: State, creds: Credentials | None, name: str, environment: str, reason: str | None
) -> _ops.PromotionResult:
    return await run_in_threadpool(
        lambda: state.catalog.rollback(
            name, environment, creds=creds, actor=_actor(state, creds), reason=reason
        )
    )


async def promote(request: Request) -> Response:
    state, creds, body = await _prepare(request)
    ref = _text(body, "digest") or _text(body, "reference")
    if ref is None:
        raise UsageError("the request body needs 'reference' (a version) or 'digest'")
    environment = _text(body, "to", required=True) or ""
    name = request.path_params["name"]
    result = await promote_as_caller(state, creds, name, ref, environment, _text(body, "reason"))
    return _answer(result)


async def rollback(request: Request) -> Response:
    state, creds, body = await _prepare(request)
    environment = _text(body, "environment", required=True) or _text(body, "to") or ""
    name = request.path_params["name"]
    result = await rollback_as_caller(state, creds, name, environment, _text(body, "reason"))
    return _answer(result)


def routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}/models/{{name:path}}/promote", promote, methods=["POST"]),
        Route(f"{PREFIX}/models/{{name:path}}/rollback", rollback, methods=["POST"]),
    ]
