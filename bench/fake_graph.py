"""A fake WhatsApp Cloud (Graph) API for tests and benchmarks. It listens on 127.0.0.1 only.

POST /{version}/{phone_number_id}/messages   needs a Bearer token, checks messaging_product == "whatsapp",
                                             "to" (a phone) or "recipient" (a BSUID: one of them) and
                                             "type" (a missing type with a "text" object is
                                             text, as in the real API), answers like the real API,
                                             records the send
POST /{version}/{phone_number_id}/media      an upload (multipart `file`): kept, answered with its id
GET  /{version}/{media_id}                   needs the token: the file's URL, mime_type, sha256, file_size
GET  /download/{media_id}                    needs the token: the file itself
PUT  /received/{media_id}                    (for tests) a file someone sent the number: the body, of
                                             the request's Content-Type (X-Announce-Size: the file_size
                                             to announce instead of the real one)
GET  /uploads                                every upload: [id, mime_type, filename, sha256]
GET  /stats                                  counts (requests, ok, 429, 500, 401, 400, mark-read)
GET  /dump                                   every successful send: [arrival, to, type, ref, wamid]
GET  /dump?all=1                             every attempt, failures too:
                                             [arrival, to, type, ref, wamid, status]
GET  /dump?bodies=1                          every successful send's request body
POST /reset                                  forget everything recorded

arrival is wall-clock time.time() when the request reached the handler. ref is the inbound message the
send answers, if it can be found: the context.message_id of a quoted reply, else the first '#<digits>'
token anywhere in the request body (load.py puts '#<seq>' in every inbound text, so a bot that echoes or
quotes it is matched exactly). Sends without a ref are matched by load.py on "to".

Faults on demand: --rate-limit-every N answers every Nth send with Graph error 130429 and HTTP 429,
--fail-rate P answers a fraction P with HTTP 500, --latency-ms adds a delay to every send.
(--fail-every and --error-rate are the older names of the first two.)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import random
import re
import time

from aiohttp import web

THROTTLED = {
    "error": {
        "message": "(#130429) Rate limit hit",
        "type": "OAuthException",
        "code": 130429,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Cloud API message throughput has been reached.",
        },
        "error_subcode": 2494055,
        "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
    }
}
SERVER_ERROR = {
    "error": {
        "message": "An unknown error has occurred.",
        "type": "OAuthException",
        "code": 1,
        "fbtrace_id": "A7lNqs0BStd4GxN3b3ilPcD",
    }
}
BAD_TOKEN = {
    "error": {
        "message": "Error validating access token",
        "type": "OAuthException",
        "code": 190,
        "fbtrace_id": "AbCdEf",
    }
}

TOKEN_RE = re.compile(rb"#(\d+)")


def _bad_request(message: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": f"(#100) {message}",
                "type": "OAuthException",
                "code": 100,
                "fbtrace_id": "AbCdEg",
            }
        },
        status=400,
    )


def build_app(
    token: str = "bench-token",
    fail_every: int = 0,
    error_rate: float = 0.0,
    latency_ms: float = 0.0,
    seed: int | None = None,
) -> web.Application:
    """The fake API as an aiohttp app. token '' accepts any Bearer token; fail_every is the 130429 period."""
    attempts: list[list] = []  # [arrival, to, type, ref, wamid, status]
    bodies: list[dict] = []  # the request body of each successful send
    files: dict[str, tuple[bytes, str]] = {}  # media id -> (data, mime type): received and uploaded
    announced: dict[str, str] = {}  # media id -> a file_size that is not the real one (tests of limits)
    uploads: list[list] = []  # [id, mime_type, filename, sha256]
    counts = {
        "requests": 0,
        "ok": 0,
        "throttled_429": 0,
        "failed_500": 0,
        "unauthorized_401": 0,
        "bad_request_400": 0,
        "mark_read": 0,
    }
    sends_counter = itertools.count(1)
    ids = itertools.count(1)
    rng = random.Random(seed)
    expected_auth = f"Bearer {token}"

    async def messages(request: web.Request) -> web.Response:
        arrival = time.time()
        counts["requests"] += 1
        auth = request.headers.get("Authorization", "")
        if (token and auth != expected_auth) or not auth.startswith("Bearer "):
            counts["unauthorized_401"] += 1
            return web.json_response(BAD_TOKEN, status=401)
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            counts["bad_request_400"] += 1
            return _bad_request("Invalid JSON")
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            counts["bad_request_400"] += 1
            return _bad_request("messaging_product must be whatsapp")
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if body.get("status") == "read":  # mark as read / typing indicator: not a reply
            counts["mark_read"] += 1
            return web.json_response({"success": True})
        mtype = body.get("type") or ("text" if "text" in body else None)  # the real API defaults to text
        if ("to" in body) == ("recipient" in body) or mtype is None:
            counts["bad_request_400"] += 1
            return _bad_request("Invalid parameter: 'to' (or 'recipient', a BSUID) and 'type' are required")
        to, mtype = str(body.get("to") or body["recipient"]), str(mtype)
        ctx = body.get("context")
        ref = ctx.get("message_id") if isinstance(ctx, dict) else None
        if ref is None:
            m = TOKEN_RE.search(raw)
            ref = int(m.group(1)) if m else None
        n = next(sends_counter)
        if fail_every and n % fail_every == 0:
            counts["throttled_429"] += 1
            attempts.append([arrival, to, mtype, ref, None, 429])
            return web.json_response(THROTTLED, status=429)
        if error_rate and rng.random() < error_rate:
            counts["failed_500"] += 1
            attempts.append([arrival, to, mtype, ref, None, 500])
            return web.json_response(SERVER_ERROR, status=500)
        counts["ok"] += 1
        wamid = f"wamid.FAKE{next(ids):012d}"
        attempts.append([arrival, to, mtype, ref, wamid, 200])
        bodies.append(body)
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to} if "to" in body else {"input": to, "user_id": to}],
                "messages": [{"id": wamid}],
            }
        )

    def authorized(request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and (not token or auth == expected_auth)

    async def media(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response(BAD_TOKEN, status=401)
        form = await request.post()
        upload = form.get("file")
        media_id = f"{next(ids):016d}"
        if isinstance(upload, web.FileField):
            data = upload.file.read()
            files[media_id] = (data, upload.content_type)
            uploads.append([media_id, upload.content_type, upload.filename, hashlib.sha256(data).hexdigest()])
        return web.json_response({"id": media_id})

    async def media_url(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response(BAD_TOKEN, status=401)
        media_id = request.match_info["media_id"]
        if media_id not in files:
            return _bad_request(f"Unsupported get request. Object with ID '{media_id}' does not exist")
        data, mime_type = files[media_id]
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": str(request.url.origin().with_path(f"/download/{media_id}")),
                "mime_type": mime_type,
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": announced.get(media_id, str(len(data))),
                "id": media_id,
            }
        )

    async def download(request: web.Request) -> web.Response:
        if not authorized(request):  # "If you omit your token, the request will fail."
            return web.json_response(BAD_TOKEN, status=401)
        found = files.get(request.match_info["media_id"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    async def received(request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        files[media_id] = (await request.read(), request.content_type)
        if size := request.headers.get("X-Announce-Size"):
            announced[media_id] = size
        return web.json_response({"ok": True})

    async def uploaded(request: web.Request) -> web.Response:
        return web.json_response(uploads)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({**counts, "sends": counts["ok"], "recorded": len(attempts)})

    async def dump(request: web.Request) -> web.Response:
        if request.query.get("bodies"):
            return web.json_response(bodies)
        if request.query.get("all"):
            return web.json_response(attempts)
        return web.json_response([a[:5] for a in attempts if a[5] == 200])

    async def reset(request: web.Request) -> web.Response:
        attempts.clear()
        bodies.clear()
        files.clear()
        uploads.clear()
        for k in counts:
            counts[k] = 0
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/{version}/{phone_id}/messages", messages)
    app.router.add_post("/{version}/{phone_id}/media", media)
    app.router.add_get("/stats", stats)
    app.router.add_get("/dump", dump)
    app.router.add_get("/uploads", uploaded)
    app.router.add_post("/reset", reset)
    app.router.add_put("/received/{media_id}", received)
    app.router.add_get("/download/{media_id}", download)
    app.router.add_get("/{version}/{media_id}", media_url)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=9999, help="port on 127.0.0.1 (default 9999)")
    ap.add_argument(
        "--token", default="bench-token", help="expected Bearer token; '' accepts any (default bench-token)"
    )
    ap.add_argument(
        "--rate-limit-every",
        "--fail-every",
        dest="rate_limit_every",
        type=int,
        default=0,
        metavar="N",
        help="answer every Nth send with error 130429, HTTP 429 (0 = never)",
    )
    ap.add_argument(
        "--fail-rate",
        "--error-rate",
        dest="fail_rate",
        type=float,
        default=0.0,
        metavar="P",
        help="answer this fraction of sends with HTTP 500 (0..1)",
    )
    ap.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every send")
    ap.add_argument("--seed", type=int, default=None, help="seed for --fail-rate")
    a = ap.parse_args()
    app = build_app(a.token, a.rate_limit_every, a.fail_rate, a.latency_ms, a.seed)
    web.run_app(app, host="127.0.0.1", port=a.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
