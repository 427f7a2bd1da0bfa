"""The customer's rights over HTTP (`Authorization: Bearer $BOT_ADMIN_TOKEN`):

  DELETE /api/customers/{phone}          erase them (bot/privacy/erasure.py); what went, as counts
  GET    /api/customers/{phone}/export   everything held about them, as JSON (bot/privacy/export.py)

{phone} is a phone (digits; `+`, spaces and dashes allowed) or a BSUID. 400 when it is neither, 404 when
no customer has it, 401 without the admin token.
"""

from __future__ import annotations

from aiohttp import web

from bot.db.models import Customer
from bot.http.admin import require_admin
from bot.http.errors import dumps, error_response
from bot.media.store import MediaStore
from bot.privacy.erasure import erase_customer
from bot.privacy.export import export_customer
from bot.privacy.subject import BadAddress, UnknownCustomer, find_subject

MEDIA_STORE = web.AppKey("customers_media_store", MediaStore)
ERASED_BY = "admin token"
"""Who the audit row says asked for an erasure over HTTP: the admin token is one, shared."""


async def _subject(request: web.Request) -> Customer | web.Response:
    require_admin(request)
    try:
        return await find_subject(request.match_info["phone"])
    except BadAddress as exc:
        return error_response(400, str(exc))
    except UnknownCustomer as exc:
        return error_response(404, str(exc))


async def erase(request: web.Request) -> web.Response:
    customer = await _subject(request)
    if isinstance(customer, web.Response):
        return customer
    report = await erase_customer(customer, request.app[MEDIA_STORE], ERASED_BY)
    return web.json_response(report.as_json())


async def export(request: web.Request) -> web.Response:
    customer = await _subject(request)
    if isinstance(customer, web.Response):
        return customer
    document = await export_customer(customer, request.app[MEDIA_STORE])
    return web.Response(text=dumps(document), content_type="application/json")


def add_routes(app: web.Application, media: MediaStore) -> None:
    app[MEDIA_STORE] = media
    app.router.add_delete("/api/customers/{phone}", erase)
    app.router.add_get("/api/customers/{phone}/export", export)
