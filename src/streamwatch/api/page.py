"""The live-ops page (CONTRACTS §5 `GET /`): three plain files served from the package.

No build step and nothing from the internet: the ops room may have neither. The page needs no
token (the data it then loads does); its static files are a fixed set read from the installed
package, so no request path ever reaches the file system. A strict Content-Security-Policy keeps
the page to its own scripts, styles and origin (the websocket feed included).
"""
from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

__all__ = ["router", "STATIC_FILES", "CSP"]

router = APIRouter(tags=["page"])

STATIC_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
# no-cache: revalidate on every load, so an upgraded service never runs last version's app.js
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


@cache
def _read(name: str) -> bytes:
    return (resources.files("streamwatch") / "web" / name).read_bytes()


@router.get("/", include_in_schema=False)
async def index() -> Response:
    """The page itself; it loads /static/app.js, which opens the feed and polls /v1/streams."""
    return Response(_read("index.html"), media_type="text/html; charset=utf-8",
                    headers={**_HEADERS, "Content-Security-Policy": CSP,
                             "Referrer-Policy": "no-referrer"})


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    """One of the page's assets; anything else (including any path) is 404."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    return Response(_read(name), media_type=media_type, headers=_HEADERS)
