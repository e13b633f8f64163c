"""One ASGI application: the catalog pages at ``/``, the REST API at ``/api/v1``, the package index at ``/simple/``.

Handlers are plain functions (registry I/O blocks), run by Starlette in its thread pool. Every
answer carries a strict Content-Security-Policy: the pages load nothing but the app's own
stylesheet and run no script, so text from the registry can never become code.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mloci.catalog import Catalog, CatalogConfig
from mloci.errors import AuthError, MlociError, UsageError
from mloci.pyindex.settings import UpstreamSettings
from mloci.web import api, forms, writes
from mloci.web.common import Problem, State, caller_credentials, problem
from mloci.web.secret import MIN_BYTES, random_secret
from mloci.web.ui import Pages

log = logging.getLogger("mloci.web")

CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeaders:
    """Adds the security headers to every response (including the package index's)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class ServeConfig:
    """What ``mloci serve`` serves."""

    catalog: CatalogConfig
    read_only: bool = False
    require_auth: bool = False
    package_index: bool = True  # mount the PEP 503 index at /simple/ (needs a registry)
    policies: Mapping[str, Path] = field(default_factory=dict)  # environment → policy file
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)  # for /simple/
    secret: bytes | None = field(default=None, repr=False)  # signs form tokens; None: one of this process
    init_image: str | None = None  # the image with mloci the version page's init-container snippet names


def _stylesheet(request: Request) -> Response:
    css = (resources.files("mloci.web") / "static" / "style.css").read_bytes()
    return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


def _index_app(config: ServeConfig) -> ASGIApp | None:
    if not config.package_index or config.catalog.registry is None:
        return None
    try:
        from mloci.pyindex.app import IndexConfig  # noqa: PLC0415  (python-multipart is optional)
        from mloci.pyindex.app import create_app as create_index  # noqa: PLC0415
    except ImportError:
        return None
    return create_index(
        IndexConfig(
            registry=config.catalog.registry,
            namespace=config.catalog.namespace,
            options=config.catalog.options,
            read_only=config.read_only,
            **config.upstream,
        )
    )


class GuardedIndex:
    """The package index behind this server's rules: uploads need the caller's own credentials (the
    index alone would use the server's for an anonymous upload), credentials a caller sends are
    checked with the registry, and ``--require-auth`` covers downloads and pages too. Reads with
    the caller's credentials are the index's own (it reads with a client's Basic credentials)."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        writing = request.method not in ("GET", "HEAD")
        # Credentials the caller sent must be ones the registry accepts (401 otherwise, as on the pages).
        if writing or self.state.require_auth or "authorization" in request.headers:
            try:
                if writing and caller_credentials(request) is None:
                    raise AuthError("uploads need your registry credentials; the server's are never used")
                await run_in_threadpool(self.state.check_caller, request)
            except MlociError as exc:
                item = problem(exc)
                headers = (
                    {"WWW-Authenticate": 'Basic realm="mloci", charset="UTF-8"'} if item.status == 401 else {}
                ) | item.headers
                response = PlainTextResponse(item.message + "\n", status_code=item.status, headers=headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(config: ServeConfig, *, catalog: Catalog | None = None) -> Starlette:
    """The application; the catalog (and its registry connections) close when it shuts down."""
    if config.secret is not None and len(config.secret) < MIN_BYTES:
        raise UsageError(f"the form secret needs at least {MIN_BYTES} bytes, not {len(config.secret)}")
    catalog = catalog or Catalog(config.catalog)
    state = State(
        catalog=catalog,
        read_only=config.read_only,
        require_auth=config.require_auth,
        policies=dict(config.policies),
        init_image=config.init_image,
        secret=config.secret if config.secret is not None else random_secret(),
    )
    pages = Pages()

    def is_api(request: Request) -> bool:
        return request.url.path.startswith(api.PREFIX)

    async def on_mloci_error(request: Request, exc: Exception) -> Response:
        item = problem(exc) if isinstance(exc, MlociError) else Problem(500, "INTERNAL", str(exc))
        if item.status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, item.message)
        return api.error_response(item) if is_api(request) else _with_auth(pages.error(request, item), item)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        item = Problem(500, "INTERNAL", "the server failed to answer this request", "see the server log")
        return api.error_response(item) if is_api(request) else pages.error(request, item)

    async def on_not_found(request: Request, exc: Exception) -> Response:
        item = Problem(404, "NOT_FOUND", f"nothing at {request.url.path}")
        return api.error_response(item) if is_api(request) else pages.error(request, item)

    routes: list[BaseRoute] = [
        Route("/static/style.css", _stylesheet, methods=["GET"]),
        *api.routes(),
        *writes.routes(),
        *forms.routes(),
        *pages.routes(),
    ]
    index = _index_app(config)
    if index is not None:
        routes.append(Mount("", app=GuardedIndex(index, state)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            catalog.close()  # callers' views belong to the catalog and close with it

    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={MlociError: on_mloci_error, Exception: on_unexpected, 404: on_not_found},
        lifespan=lifespan,
    )
    app.state.mloci = state
    app.state.pages = pages
    return app


def _with_auth(response: Response, item: Problem) -> Response:
    response.headers.update(item.headers)
    if item.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="mloci", charset="UTF-8"'
    return response


def serve(
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
) -> None:
    """Run until interrupted; with ``port`` 0 the chosen port is printed once listening."""
    import socket  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415  (only the server needs it)

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections made once the URL is printed wait for the server, never fail
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    chosen = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"mloci serve: http://{shown}:{chosen}/", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), log_level=log_level, server_header=False, lifespan="on")
    )
    server.run(sockets=[sock])
