"""The admin API (`Authorization: Bearer $BOT_ADMIN_TOKEN`): the credentials others hold.

  GET    /api/admin/apikeys               every orders-API key: name, created, last used, revoked
  DELETE /api/admin/apikeys/{name}        revoke it: it stops working at once; 404 when none is live
  GET    /api/admin/technicians           every technician: id, name, role, phone, active, created
  DELETE /api/admin/technicians/{id}      deactivate: their token and panel sessions stop working at once
                                          (an open WebSocket closes within RECHECK_SECONDS); 404 unknown

Never a key, token or hash in an answer: they exist only with their holders (stored hashed).
"""

from __future__ import annotations

from aiohttp import web

from bot.db.models import Technician
from bot.handoff.tokens import revoke_technician
from bot.http.errors import error_response, path_id
from bot.http.messages import ADMIN_TOKEN, bearer_ok
from bot.orders.keys import list_keys, revoke_key

MAX_NAME = 128


def require_admin(request: web.Request) -> None:
    if not bearer_ok(request, request.app[ADMIN_TOKEN]):
        raise web.HTTPUnauthorized(
            text='{"error": "missing or wrong bearer token"}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="admin"'},
        )


async def apikeys(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response([key.as_json() for key in await list_keys()])


async def revoke_apikey(request: web.Request) -> web.Response:
    require_admin(request)
    name = request.match_info["name"]
    if len(name) > MAX_NAME or not await revoke_key(name):
        return error_response(404, "there is no live API key of that name")
    return web.json_response({"revoked": name})


async def technicians(request: web.Request) -> web.Response:
    require_admin(request)
    rows = await Technician.all().order_by("id")
    return web.json_response(
        [
            {
                "id": row.id,
                "name": row.name,
                "role": str(row.role),
                "phone": row.phone,
                "active": row.active,
                "created_at": row.created_at.isoformat(),
            }
            for row in rows
        ]
    )


async def revoke_technician_route(request: web.Request) -> web.Response:
    require_admin(request)
    technician_id = path_id(request, "id", "no such technician")
    technician = await Technician.get_or_none(id=technician_id, active=True)
    if technician is None or not await revoke_technician(technician.name):
        return error_response(404, "there is no active technician with that id")
    return web.json_response({"deactivated": technician.name, "id": technician.id})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/admin/apikeys", apikeys)
    app.router.add_delete("/api/admin/apikeys/{name}", revoke_apikey)
    app.router.add_get("/api/admin/technicians", technicians)
    app.router.add_delete("/api/admin/technicians/{id}", revoke_technician_route)
