"""The catalog pages: Jinja2 templates rendered on the server, autoescaped, no JavaScript needed."""

from __future__ import annotations

import math
from collections import OrderedDict
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mloci.catalog import Query
from mloci.catalog.models import Promotion
from mloci.web import chart, forms
from mloci.web.common import Problem, state_of


def _safe_url(value: object) -> str | None:
    """``value`` when it is an http(s) URL, else None: a ``javascript:`` or ``data:`` URL is never a link."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def _size(value: object) -> str:
    if not isinstance(value, int):
        return ""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return str(value)


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _when(value: object) -> str:
    if not isinstance(value, str):
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _short(value: object) -> str:
    text = str(value or "")
    return text[:19] if text.startswith("sha256:") else text


def _model_url(name: str, *rest: str) -> str:
    return "/models/" + quote(name, safe="/") + "".join("/" + quote(part, safe="") for part in rest)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("mloci.web") / "templates")),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.ChainableUndefined,  # registry documents may lack any key
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(safe_url=_safe_url, size=_size, number=_number, when=_when, short=_short)
    env.globals.update(
        model_url=_model_url, chart_width=chart.WIDTH, chart_height=chart.HEIGHT, urlencode=urlencode
    )
    return env


class Pages:
    def __init__(self) -> None:
        self.env = environment()

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.env.get_template(template).render(request_path=request.url.path, **context)
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-cache"})

    def error(self, request: Request, item: Problem) -> HTMLResponse:
        return self.render(
            request, "error.html", status=item.status, problem=item, title=f"Error {item.status}"
        )

    def models(self, request: Request) -> Response:
        state = state_of(request)
        catalog = state.catalog_for(request)
        q = request.query_params.get("q", "")
        try:
            page = max(int(request.query_params.get("page", "1")), 1)
        except ValueError:
            page = 1
        env = request.query_params.get("env", "")
        result = catalog.models(Query.parse(q, env=env or None), page=page, limit=50)
        return self.render(request, "models.html", result=result, q=q, env=env, title="Models")

    def model(self, request: Request) -> Response:
        state = state_of(request)
        catalog = state.catalog_for(request)
        name = request.path_params["name"]
        detail = catalog.model(name)
        timeline: OrderedDict[str, list[Promotion]] = OrderedDict()
        configured = [env for env in detail.environments if env.configured]
        by_alias = {env.alias: env.name for env in configured}
        for env in configured:
            timeline[env.name] = []  # configured environments in promotion order
        for record in detail.history:
            group = record.environment
            if group not in timeline:
                group = by_alias.get(record.alias, group)  # promoted under the alias's name
            timeline.setdefault(group, []).append(record)
        for empty in [group for group, records in timeline.items() if not records]:
            del timeline[empty]
        token = forms.csrf_token(request)
        response = self.render(
            request,
            "model.html",
            detail=detail,
            charts=chart.charts(detail.versions),
            timeline=timeline,
            title=detail.model.name,
            forms=forms.forms_for(request, detail, token),
        )
        forms.set_cookie(response, request, token)
        return response

    def version(self, request: Request) -> Response:
        state = state_of(request)
        catalog = state.catalog_for(request)
        detail = catalog.version(request.path_params["name"], request.path_params["ref"])
        return self.render(
            request,
            "version.html",
            detail=detail,
            init_image=state.init_image,
            title=f"{detail.name} {detail.summary.version or ''}",
        )

    def compare(self, request: Request) -> Response:
        state = state_of(request)
        catalog = state.catalog_for(request)
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        result = catalog.compare(a, b) if a and b else None
        return self.render(request, "compare.html", result=result, a=a, b=b, title="Compare")

    def packages(self, request: Request) -> Response:
        state = state_of(request)
        catalog = state.catalog_for(request)
        return self.render(request, "packages.html", packages=catalog.packages(), title="Packages")

    def redirect_model(self, request: Request) -> Response:
        return RedirectResponse(request.url.path.rstrip("/"), status_code=308)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.models, methods=["GET"]),
            Route("/compare", self.compare, methods=["GET"]),
            Route("/packages/", self.packages, methods=["GET"]),
            Route("/models/{name:path}/versions/{ref}", self.version, methods=["GET"]),
            Route("/models/{name:path}/", self.redirect_model, methods=["GET"]),  # one URL per page
            Route("/models/{name:path}", self.model, methods=["GET"]),
        ]
