"""docs/API.md against the app's own routes: each route is documented, and each documented
route exists. The routes come from the app `create_app` builds (HTTP and websocket), so a route
added without documentation, or removed while its documentation stays, fails here."""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from streamwatch.api.app import create_app
from streamwatch.config.load import load_config

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "API.md"
# Swagger UI's own helper page: part of /docs, not an API of ours
UNDOCUMENTED = {("GET", "/docs/oauth2-redirect")}
_MENTION = re.compile(r"`(GET|POST|PUT|PATCH|DELETE|WS) (/[^`?\s]*)`")


def _normal(path: str) -> str:
    """Path parameters compared by position, not name (`{incident_id}` is `{id}` in prose)."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def _walk(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(METHOD, path) of every route, entering included routers (also FastAPI versions that
    keep them as nested objects instead of flattening them into the app)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(inner.routes, prefix + getattr(context, "prefix", ""))
            continue
        path = prefix + route.path
        methods = getattr(route, "methods", None)
        if methods is None:                              # a websocket route
            yield "WS", path
        for method in sorted(methods or ()):
            if method != "HEAD":
                yield method, path


def _app_routes() -> set[tuple[str, str]]:
    app = create_app(load_config(REPO / "config", REPO / "detectors", env={}))
    return {(m, _normal(p)) for m, p in _walk(app.routes)}


def _documented() -> set[tuple[str, str]]:
    return {(m, _normal(p)) for m, p in _MENTION.findall(DOC.read_text(encoding="utf-8"))}


def test_every_route_of_the_app_is_documented() -> None:
    routes = _app_routes()
    assert {("WS", "/v1/alerts/stream"), ("POST", "/v1/silences"),
            ("GET", "/v1/webhooks/dead-letters"), ("GET", "/metrics")} <= routes
    missing = sorted(routes - UNDOCUMENTED - _documented())
    assert not missing, f"routes missing from docs/API.md (as `METHOD /path`): {missing}"


def test_every_documented_route_exists() -> None:
    stale = sorted(_documented() - _app_routes())
    assert not stale, f"docs/API.md names routes the app does not have: {stale}"


def test_the_readme_links_the_api_doc() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "(docs/API.md)" in readme and "## API" in readme and "### Alert formats" in readme
