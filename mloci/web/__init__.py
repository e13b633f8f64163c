"""``mloci serve``: the catalog web UI, the REST API and the package index as one ASGI application."""

from mloci.web.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
