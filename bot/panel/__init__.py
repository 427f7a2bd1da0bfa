"""The technician panel: one static page at /panel (no build step) and its small customer API.

The page talks to the technician API (/api/tech/*, bot/handoff/) and its WebSocket; this package only
serves the files and `GET /panel/api/customers/{phone}` (orders and appointments beside the chat).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.http import panel as api

STATIC = Path(__file__).resolve().parent / "static"

# The page loads only its own files: no CDN, no inline scripts, nothing framed elsewhere.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob: https:; connect-src 'self' ws: wss:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=_HEADERS)


async def to_index(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/panel")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/panel", index)
    app.router.add_get("/panel/", to_index)
    app.router.add_static("/panel/static", STATIC, append_version=False)
    api.add_routes(app)
