"""The REST API under ``/api/v1``: JSON views of the catalog, ETags, pagination, OCI-style errors.

Conventions follow the OCI distribution API and GitHub's: nouns in paths, ``Link`` headers for
pages, ``ETag`` on every answer (``If-None-Match`` gives 304), errors as
``{"errors": [{"code", "message", "detail"}]}``. A manifest named by digest never changes, so
it is served ``immutable``; everything else must be revalidated.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mloci.catalog import Query
from mloci.catalog.models import Comparison, ModelDetail, ModelPage, Package, Promotion, VersionDetail
from mloci.errors import MlociError, NotFoundError, UsageError
from mloci.types.digest import Digest
from mloci.web.common import Problem, etag_for, not_modified, state_of

PREFIX = "/api/v1"


def error_response(item: Problem, headers: dict[str, str] | None = None) -> Response:
    body = {"errors": [{"code": item.code, "message": item.message, "detail": item.detail}]}
    extra = {**item.headers, **(headers or {})}
    if item.status == 401:
        extra["WWW-Authenticate"] = 'Basic realm="mloci", charset="UTF-8"'
    return Response(
        json.dumps(body).encode(), status_code=item.status, media_type="application/json", headers=extra
    )


def _json(
    request: Request, document: Any, *, immutable: bool = False, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(document, ensure_ascii=False, sort_keys=False).encode()
    etag = etag_for(body)
    cache = f"{_audience(request)}, max-age=31536000, immutable" if immutable else "no-cache"
    all_headers = {"ETag": etag, "Cache-Control": cache, "Vary": "Authorization", **(headers or {})}
    if not_modified(request, etag):
        return Response(status_code=304, headers=all_headers)
    return Response(body, media_type="application/json", headers=all_headers)


def _audience(request: Request) -> str:
    """``private`` for an answer to credentials (no shared cache may give it to anyone else)."""
    return "private" if request.headers.get("authorization") else "public"


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"?{name}= must be a whole number, not {raw!r}") from None


def _link(request: Request, page: int, limit: int) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page", "limit")]
    return f"<{request.url.path}?{urlencode([*params, ('page', str(page)), ('limit', str(limit))])}>"


def _paged(request: Request, key: str, items: list[Any], default: int = 100) -> Response:
    """``items`` one page at a time (``?page=``, ``?limit=`` 1 to 500), with ``Link`` rel=next/prev."""
    page = _int(request, "page", 1)
    limit = _int(request, "limit", default)
    if page < 1 or not 1 <= limit <= 500:
        raise UsageError("page must be ≥ 1 and limit between 1 and 500")
    start = (page - 1) * limit
    links = []
    if page * limit < len(items):
        links.append(_link(request, page + 1, limit) + '; rel="next"')
    if page > 1:
        links.append(_link(request, page - 1, limit) + '; rel="prev"')
    document = {key: items[start : start + limit], "total": len(items), "page": page, "limit": limit}
    return _json(request, document, headers={"Link": ", ".join(links)} if links else None)


def models(request: Request) -> Response:
    state = state_of(request)
    catalog = state.catalog_for(request)
    query = Query.parse(
        request.query_params.get("q"),
        metric_filters=tuple(request.query_params.getlist("metric")),
        env=request.query_params.get("env"),
    )
    page = _int(request, "page", 1)
    limit = _int(request, "limit", 50)
    result: ModelPage = catalog.models(query, page=page, limit=limit)
    links = []
    if page * limit < result.total:
        links.append(_link(request, page + 1, limit) + '; rel="next"')
    if page > 1:
        links.append(_link(request, page - 1, limit) + '; rel="prev"')
    return _json(request, result.to_json(), headers={"Link": ", ".join(links)} if links else None)


def model(request: Request) -> Response:
    state = state_of(request)
    catalog = state.catalog_for(request)
    detail: ModelDetail = catalog.model(request.path_params["name"])
    return _json(request, detail.to_json())


def version(request: Request) -> Response:
    state = state_of(request)
    catalog = state.catalog_for(request)
    detail: VersionDetail = catalog.version(request.path_params["name"], request.path_params["ref"])
    return _json(request, detail.to_json())


def manifest(request: Request) -> Response:
    """The manifest's exact bytes: named by digest, so cacheable forever."""
    state = state_of(request)
    catalog = state.catalog_for(request)
    digest = Digest.parse(request.path_params["digest"])
    repository = catalog.config.repository(request.path_params["name"])
    # Content by digest is cached for everyone: the registry must show it in this repository first.
    if not catalog.holds(repository.repository, digest):
        raise NotFoundError(f"no manifest {digest} in {request.path_params['name']!r}")
    descriptor, data = catalog.store.fetch_manifest(repository.with_digest(digest))
    etag = f'"{descriptor.digest}"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"{_audience(request)}, max-age=31536000, immutable",
        "Vary": "Authorization",
        "Docker-Content-Digest": str(descriptor.digest),
    }
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=descriptor.media_type, headers=headers)


def history(request: Request) -> Response:
    state = state_of(request)
    catalog = state.catalog_for(request)
    entries: list[Promotion] = catalog.history(
        request.path_params["name"], request.query_params.get("environment")
    )
    return _paged(request, "history", [e.to_json() for e in entries])


def diff(request: Request) -> Response:
    state = state_of(request)
    catalog = state.catalog_for(request)
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if not a or not b:
        raise UsageError("give two versions: ?a=NAME:VERSION&b=NAME:VERSION (or NAME@sha256:…)")
    result: Comparison = catalog.compare(a, b)
    return _json(request, result.to_json())


def packages(request: Request) -> Response:
    state = state_of(request)
    catalog = state.catalog_for(request)
    found: list[Package] = catalog.packages()
    return _paged(request, "packages", [p.to_json() for p in found])


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API, its schemas generated from the catalog's models."""
    schemas: dict[str, Any] = {}
    for model_type in (ModelPage, ModelDetail, VersionDetail, Comparison, Promotion, Package):
        schema = _schema(model_type)
        schemas.update(schema.pop("$defs", {}))
        schemas[model_type.__name__] = schema
    schemas["Errors"] = {
        "type": "object",
        "properties": {
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "detail": {"type": ["string", "null"]},
                    },
                    "required": ["code", "message"],
                },
            }
        },
    }

    def registry_failed(text: str) -> dict[str, Any]:
        return {
            "description": text,
            "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
        }

    def ok(name: str) -> dict[str, Any]:
        return {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
            },
            "304": {"description": "Not modified (If-None-Match matched the ETag)"},
            "503": registry_failed(
                "REGISTRY_UNAVAILABLE: the registry cannot be reached (refused, DNS, TLS)"
            ),
            "504": registry_failed(
                "REGISTRY_TIMEOUT: the registry accepted the connection but did not answer"
            ),
            "default": {
                "description": "Error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
            },
        }

    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "model name; may contain slashes",
    }

    def query(key: str, text: str) -> dict[str, Any]:
        return {
            "name": key,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": text,
        }

    return {
        "openapi": "3.1.0",
        "info": {"title": "mloci catalog API", "version": "1"},
        "paths": {
            f"{PREFIX}/models": {
                "get": {
                    "summary": "Models, filtered and paginated (Link: rel=next/prev)",
                    "parameters": [
                        query("q", "words, metric filters (auc>0.9) and env:NAME, all of which must match"),
                        query("metric", "a metric filter, repeatable: auc>0.9"),
                        query("env", "only models with this environment"),
                        query("page", "page number, from 1"),
                        query("limit", "models per page, 1–500 (default 50)"),
                    ],
                    "responses": ok("ModelPage"),
                }
            },
            f"{PREFIX}/models/{{name}}": {
                "get": {
                    "summary": "The model card, its versions and promotion history",
                    "parameters": [name],
                    "responses": ok("ModelDetail"),
                }
            },
            f"{PREFIX}/models/{{name}}/versions/{{ref}}": {
                "get": {
                    "summary": "One version by version tag or digest: files, annotations, referrers, lineage",
                    "parameters": [
                        name,
                        {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}},
                    ],
                    "responses": ok("VersionDetail"),
                }
            },
            f"{PREFIX}/models/{{name}}/manifests/{{digest}}": {
                "get": {
                    "summary": "The manifest's exact bytes (immutable)",
                    "parameters": [
                        name,
                        {"name": "digest", "in": "path", "required": True, "schema": {"type": "string"}},
                    ],
                    "responses": {"200": {"description": "the manifest"}},
                }
            },
            f"{PREFIX}/models/{{name}}/history": {
                "get": {
                    "summary": "Promotion records, newest first",
                    "parameters": [
                        name,
                        query("environment", "one environment"),
                        query("page", "page number, from 1"),
                        query("limit", "records per page, 1–500 (default 100)"),
                    ],
                    "responses": {"200": {"description": "{history: [Promotion], total, page, limit}"}},
                }
            },
            f"{PREFIX}/diff": {
                "get": {
                    "summary": "Compare two versions (mloci diff)",
                    "parameters": [
                        query("a", "NAME:VERSION or NAME@sha256:…"),
                        query("b", "NAME:VERSION or NAME@sha256:…"),
                    ],
                    "responses": ok("Comparison"),
                }
            },
            f"{PREFIX}/models/{{name}}/promote": {
                "post": {
                    "summary": "Point an environment at a version, as the caller (never the server's credentials)",
                    "description": "JSON body {reference | digest, to, reason}. Needs Content-Type: "
                    "application/json and, from a browser, a same-origin request (CSRF). A policy refusal "
                    "(403 POLICY_REFUSED) lists every failed rule in errors[0].detail.failed.",
                    "security": [{"basic": []}, {"bearer": []}],
                    "parameters": [name],
                    "responses": {
                        "200": {"description": "the promotion"},
                        "default": ok("Errors")["default"],
                    },
                }
            },
            f"{PREFIX}/models/{{name}}/rollback": {
                "post": {
                    "summary": "Point an environment back at what it named before, as the caller",
                    "description": "JSON body {environment, reason}.",
                    "security": [{"basic": []}, {"bearer": []}],
                    "parameters": [name],
                    "responses": {"200": {"description": "the rollback"}, "default": ok("Errors")["default"]},
                }
            },
            f"{PREFIX}/packages": {
                "get": {
                    "summary": "Python projects, releases and files (Link: rel=next/prev)",
                    "parameters": [
                        query("page", "page number, from 1"),
                        query("limit", "projects per page, 1–500 (default 100)"),
                    ],
                    "responses": {"200": {"description": "{packages: [Package], total, page, limit}"}},
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "a registry identity token"},
            },
        },
    }


def openapi_document(request: Request) -> Response:
    return _json(request, openapi())


def docs(request: Request) -> Response:
    """The API's paths as a readable page (served by the app: no CDN, no script)."""
    pages = request.app.state.pages
    page: Response = pages.render(request, "api.html", document=openapi(), title="REST API")
    etag = etag_for(bytes(page.body))
    page.headers["ETag"] = etag
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
    return page


def routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}/", docs, methods=["GET"]),
        Route(f"{PREFIX}/openapi.json", openapi_document, methods=["GET"]),
        Route(f"{PREFIX}/models", models, methods=["GET"]),
        Route(f"{PREFIX}/models/{{name:path}}/versions/{{ref}}", version, methods=["GET"]),
        Route(f"{PREFIX}/models/{{name:path}}/manifests/{{digest}}", manifest, methods=["GET"]),
        Route(f"{PREFIX}/models/{{name:path}}/history", history, methods=["GET"]),
        Route(f"{PREFIX}/models/{{name:path}}", model, methods=["GET"]),
        Route(f"{PREFIX}/diff", diff, methods=["GET"]),
        Route(f"{PREFIX}/packages", packages, methods=["GET"]),
    ]


__all__ = ["PREFIX", "MlociError", "error_response", "openapi", "routes"]
