"""Promote and roll back from the model page: HTML forms, CSRF tokens, the caller's credentials.

The forms post ``application/x-www-form-urlencoded`` — which any site can send — so each carries a
token that must match the ``mloci_csrf`` cookie (double submit): the cookie is ``SameSite=Strict``
and ``HttpOnly``, so another site can neither send it nor read it, and the token is signed with the
server's secret (``--secret-file``, shared by replicas; else one of this process), so a cookie
planted by a sibling host does not pass either. A browser's ``Origin``/``Sec-Fetch-Site`` must name
this server too.

Credentials are the caller's, exactly as for the API: a form posted without any is answered
``401`` with a Basic challenge, the browser asks for a user name and password and posts again with
them. Nothing of them is kept beyond the request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mloci.catalog.models import ModelDetail
from mloci.errors import UsageError
from mloci.store.registry.auth import Credentials
from mloci.web.common import Forbidden, State, state_of
from mloci.web.writes import promote_as_caller, rollback_as_caller

COOKIE: Final = "mloci_csrf"
FIELD: Final = "csrf"
_MAX_FORM: Final = 16 << 10


def _sign(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]


def _valid(secret: bytes, token: str | None) -> bool:
    if not token or "." not in token or len(token) > 200:
        return False
    nonce, _, signature = token.partition(".")
    return hmac.compare_digest(signature, _sign(secret, nonce))


def csrf_token(request: Request) -> str:
    """The caller's token: the one in their cookie when it is ours, else a new one."""
    secret = state_of(request).secret
    current = request.cookies.get(COOKIE)
    if _valid(secret, current):
        return str(current)
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_sign(secret, nonce)}"


def set_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@dataclass(frozen=True)
class Choice:
    label: str
    value: str  # a version tag, else the digest


@dataclass(frozen=True)
class PromoteForms:
    """What the model page needs to draw the forms (None when the server is read-only)."""

    action: str  # the model's URL; the forms post to ACTION/promote and ACTION/rollback
    token: str
    environments: tuple[str, ...]
    versions: tuple[Choice, ...]


def forms_for(request: Request, detail: ModelDetail, token: str) -> PromoteForms | None:
    state = state_of(request)
    if state.read_only or not detail.versions:
        return None
    environments = sorted(set(detail.model.environments) | set(state.policies))
    versions = tuple(
        Choice(v.version or v.digest[:19], v.version if v.tags and v.version else v.digest)
        for v in detail.versions
    )
    return PromoteForms(request.url.path, token, tuple(environments), versions)


def check_form_origin(request: Request, token: str | None) -> None:
    """Forbidden unless the form's token matches the caller's cookie and the browser says it came from here."""
    cookie = request.cookies.get(COOKIE)
    if (
        not _valid(state_of(request).secret, token)
        or cookie is None
        or not hmac.compare_digest(str(token), cookie)
    ):
        raise Forbidden(
            "the form's security token is missing or stale; reload the page and try again", "CSRF"
        )
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden(f"cross-site request refused (Sec-Fetch-Site: {site})", "CSRF")
    origin = request.headers.get("origin")
    # Our pages are Referrer-Policy: no-referrer, so a browser posts their forms with "Origin: null";
    # then its Sec-Fetch-Site (checked above) tells where the form came from.
    if origin == "null" and site == "same-origin":
        return
    if origin is not None and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden("cross-origin request refused (the Origin is not this server)", "CSRF")


async def _form(request: Request) -> tuple[State, Credentials | None, dict[str, str]]:
    state = state_of(request)
    if state.read_only:
        raise Forbidden("this server is read-only", "READ_ONLY")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise UsageError("the form must be posted as application/x-www-form-urlencoded")
    if int(request.headers.get("content-length") or 0) > _MAX_FORM:
        raise UsageError("the form is too large")
    async with request.form(max_files=0, max_fields=20) as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    check_form_origin(request, fields.get(FIELD))
    # --require-auth covers the local store (which takes no credentials) too.
    creds = await run_in_threadpool(state.check_caller, request)
    return state, creds, fields


def _field(fields: dict[str, str], name: str, *, required: bool = True) -> str | None:
    value = (fields.get(name) or "").strip()
    if not value:
        if required:
            raise UsageError(f"the form needs {name!r}")
        return None
    if len(value) > 1000:
        raise UsageError(f"{name!r} is too long")
    return value


async def promote(request: Request) -> Response:
    state, creds, fields = await _form(request)
    name = request.path_params["name"]
    ref = _field(fields, "reference") or ""
    environment = _field(fields, "to") or ""
    result = await promote_as_caller(
        state, creds, name, ref, environment, _field(fields, "reason", required=False)
    )
    pages = request.app.state.pages
    response: Response = pages.render(request, "promoted.html", result=result, name=name, title="Promoted")
    return response


async def rollback(request: Request) -> Response:
    state, creds, fields = await _form(request)
    name = request.path_params["name"]
    environment = _field(fields, "environment") or ""
    result = await rollback_as_caller(
        state, creds, name, environment, _field(fields, "reason", required=False)
    )
    pages = request.app.state.pages
    response: Response = pages.render(request, "promoted.html", result=result, name=name, title="Rolled back")
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/models/{name:path}/promote", promote, methods=["POST"]),
        Route("/models/{name:path}/rollback", rollback, methods=["POST"]),
    ]
