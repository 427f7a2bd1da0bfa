"""A fake of the Graph API's account endpoints a shop's set-up uses: real HTTP on 127.0.0.1, behind the
bearer token, answering in Meta's shapes and refusing what Meta refuses.

GET  /{version}/{phone-number-id}?fields=...              the number (only the fields asked for, and id)
GET  /{version}/{waba-id}/subscribed_apps                 {"data": [{whatsapp_business_api_data, ...}]}
POST /{version}/{waba-id}/subscribed_apps                 {} or {override_callback_uri, verify_token}
GET  /{version}/{phone-number-id}/whatsapp_business_profile?fields=...   {"data": [profile]}
POST /{version}/{phone-number-id}/whatsapp_business_profile              messaging_product + fields
GET  /{version}/{waba-id}/message_templates               one page of `templates`

Every request is recorded in `requests` as (method, path without the version, query or JSON body).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.engine.templates import TemplateCatalog
from tests.helpers import GRAPH_TOKEN, PHONE_NUMBER_ID

GRAPH_VERSION = "v25.0"
WABA_ID = "300000000000001"
APP = {
    "id": "670843887433847",
    "link": "https://www.facebook.com/games/?app_id=670843887433847",
    "name": "Fix-It Bot",
}
PROFILE_LIMITS = {"about": 139, "address": 256, "description": 512, "email": 128}


def graph_error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AFakeTrace"}}


def approved_templates(catalog: TemplateCatalog) -> list[dict[str, Any]]:
    """Every template and language of `catalog`, approved at Meta exactly as written (buttons too)."""
    listed = []
    for name in catalog:
        template = catalog.templates[name]
        for language, body in template.languages.items():
            components: list[dict[str, Any]] = [{"type": "BODY", "text": body}]
            if titles := template.buttons.get(language):
                buttons = [{"type": "QUICK_REPLY", "text": title} for title in titles]
                components.append({"type": "BUTTONS", "buttons": buttons})
            listed.append(
                {
                    "name": name,
                    "language": language,
                    "status": "APPROVED",
                    "category": template.category.upper(),
                    "components": components,
                    "id": f"9{len(listed):05}",
                }
            )
    return listed


@dataclass
class FakeAccount:
    phone: dict[str, Any] = field(
        default_factory=lambda: {
            "display_phone_number": "+1 555-000-1111",
            "verified_name": "Fix-It Phone Repair",
            "quality_rating": "GREEN",
            "throughput": {"level": "STANDARD"},
            "whatsapp_business_manager_messaging_limit": "TIER_2K",
        }
    )
    subscribed: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] = field(
        default_factory=lambda: {"about": "Hey there! I am using WhatsApp.", "messaging_product": "whatsapp"}
    )
    templates: list[dict[str, Any]] = field(default_factory=list)
    token_error: dict[str, Any] | None = None
    """When set, every request is refused with it (HTTP 401): an expired or revoked token."""
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._recorded])
        app.router.add_get("/{version}/{id}", self._phone_number)
        app.router.add_get("/{version}/{waba}/subscribed_apps", self._subscribed_apps)
        app.router.add_post("/{version}/{waba}/subscribed_apps", self._subscribe)
        app.router.add_get("/{version}/{id}/whatsapp_business_profile", self._profile)
        app.router.add_post("/{version}/{id}/whatsapp_business_profile", self._set_profile)
        app.router.add_get("/{version}/{waba}/message_templates", self._templates)
        return app

    def paths(self, method: str | None = None) -> list[str]:
        return [path for m, path, _ in self.requests if method is None or m == method]

    @web.middleware
    async def _recorded(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path.removeprefix(f"/{GRAPH_VERSION}")
        sent = await request.json() if request.method == "POST" and request.can_read_body else {}
        self.requests.append((request.method, path, dict(request.query) if request.method == "GET" else sent))
        if request.match_info.get("version") != GRAPH_VERSION:
            return web.json_response(graph_error(100, "Unknown path components"), status=400)
        if request.headers.get("Authorization") != f"Bearer {GRAPH_TOKEN}":
            return web.json_response(graph_error(190, "Error validating access token"), status=401)
        if self.token_error is not None:
            return web.json_response(self.token_error, status=401)
        return await handler(request)

    def _unknown(self, what: str) -> web.Response:
        message = f"Unsupported get request. Object with ID '{what}' does not exist"
        return web.json_response(graph_error(100, message), status=400)

    async def _phone_number(self, request: web.Request) -> web.Response:
        if request.match_info["id"] != PHONE_NUMBER_ID:
            return self._unknown(request.match_info["id"])
        fields = request.query.get("fields", "verified_name,display_phone_number,quality_rating").split(",")
        unknown = [name for name in fields if name not in {*self.phone, "messaging_limit_tier"}]
        if unknown:
            message = f"(#100) Tried accessing nonexisting field ({unknown[0]})"
            return web.json_response(graph_error(100, message), status=400)
        return web.json_response(
            {**{k: self.phone[k] for k in fields if k in self.phone}, "id": PHONE_NUMBER_ID}
        )

    async def _subscribed_apps(self, request: web.Request) -> web.Response:
        if request.match_info["waba"] != WABA_ID:
            return self._unknown(request.match_info["waba"])
        return web.json_response({"data": self.subscribed})

    async def _subscribe(self, request: web.Request) -> web.Response:
        if request.match_info["waba"] != WABA_ID:
            return self._unknown(request.match_info["waba"])
        body = await request.json()
        override = body.get("override_callback_uri")
        if override is not None and (not body.get("verify_token") or len(override) > 200):
            return web.json_response(graph_error(100, "(#100) Invalid parameter"), status=400)
        entry: dict[str, Any] = {"whatsapp_business_api_data": APP}
        if override:
            entry["override_callback_uri"] = override
        self.subscribed = [entry]
        return web.json_response({"success": True})

    async def _profile(self, request: web.Request) -> web.Response:
        if request.match_info["id"] != PHONE_NUMBER_ID:
            return self._unknown(request.match_info["id"])
        fields = request.query["fields"].split(",")
        shown = {k: v for k, v in self.profile.items() if k in fields or k == "messaging_product"}
        return web.json_response({"data": [shown]})

    async def _set_profile(self, request: web.Request) -> web.Response:
        if request.match_info["id"] != PHONE_NUMBER_ID:
            return self._unknown(request.match_info["id"])
        body = dict(await request.json())
        if body.pop("messaging_product", None) != "whatsapp":
            return web.json_response(
                graph_error(100, "(#100) The parameter messaging_product is required."), 400
            )
        too_long = [k for k, limit in PROFILE_LIMITS.items() if len(body.get(k) or "") > limit]
        if too_long or len(body.get("websites") or []) > 2:
            return web.json_response(graph_error(100, "(#100) Param is too long"), status=400)
        self.profile = {**self.profile, **body}
        return web.json_response({"success": True})

    async def _templates(self, request: web.Request) -> web.Response:
        if request.match_info["waba"] != WABA_ID:
            return self._unknown(request.match_info["waba"])
        return web.json_response({"data": self.templates, "paging": {"cursors": {"before": "0"}}})


async def serve(fake: FakeAccount) -> TestServer:
    server = TestServer(fake.app())
    await server.start_server()
    return server


def base_url(server: TestServer) -> str:
    return str(server.make_url(f"/{GRAPH_VERSION}"))
