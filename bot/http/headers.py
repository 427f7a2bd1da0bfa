"""Headers every HTTP answer of the bot carries, whatever route or error produced it.

`X-Content-Type-Options: nosniff` keeps a browser from reading a JSON error or a panel file as
something else (a script, a page) than its declared Content-Type. It is set in `on_response_prepare`,
so static files, API answers and aiohttp's own error pages all get it.

`Referrer-Policy: no-referrer` on every answer too: a link followed out of the panel (a customer's
document, a website in a message) tells the other site nothing about the chat it came from.
"""

from __future__ import annotations

from aiohttp import web

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def add_security_headers(app: web.Application) -> None:
    app.on_response_prepare.append(_add_security_headers)
