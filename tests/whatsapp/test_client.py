"""WhatsAppClient over HTTP (aioresponses at the HTTP boundary, and bench/fake_graph.py), and the sandbox."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core
from pydantic import ValidationError
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bot.whatsapp import errors
from bot.whatsapp.client import HttpTransport, SandboxTransport, SendResult, WhatsAppClient
from bot.whatsapp.outbound import (
    Buttons,
    ListMessage,
    ListRow,
    ListSection,
    Media,
    Reaction,
    ReplyButton,
    Template,
    Text,
    to_request_body,
)
from bot.whatsapp.pacing import Pacer
from tests.helpers import BENCH, fake_graph_json, payload, receive_file

BASE = "https://graph.example.test/v21.0"
PNID = "100000000000001"
MESSAGES_URL = f"{BASE}/{PNID}/messages"
TOKEN = "test-token"
TO = "+15550002222"


def fake_graph_app(**kwargs: Any) -> web.Application:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    app: web.Application = importlib.import_module("fake_graph").build_app(**kwargs)
    return app


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 does not pass aiohttp 3.14's new required `stream_writer`
    (pnuckowski/aioresponses#289); give it a stand-in until a fixed release exists."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture(autouse=True)
def _aioresponses_compat(monkeypatch: pytest.MonkeyPatch) -> None:
    if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(session: aiohttp.ClientSession) -> WhatsAppClient:
    return WhatsAppClient(HttpTransport(session, BASE, TOKEN), PNID)


def requests_to(mock: aioresponses, url: str, method: str = "POST") -> list[Any]:
    return list(mock.requests.get((method, URL(url)), []))


def sent_json(request: Any) -> Any:
    """The JSON a recorded POST sent: its body bytes, announced as JSON (the transport encodes it)."""
    assert request.kwargs["headers"]["Content-Type"] == "application/json"
    assert "json" not in request.kwargs
    return json.loads(request.kwargs["data"])


def assert_matches(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """The fields that matter are equal; our type object may add only false-valued defaults."""
    for key in ("messaging_product", "recipient_type", "to", "type", "context"):
        assert actual.get(key) == expected.get(key), key
    kind = expected["type"]
    extra = {k: v for k, v in actual[kind].items() if k not in expected[kind]}
    assert all(not v for v in extra.values()), extra
    assert {k: v for k, v in actual[kind].items() if k in expected[kind]} == expected[kind]


SendCall = Callable[[WhatsAppClient], Awaitable[SendResult]]

SEND_CASES: list[tuple[str, SendCall]] = [
    (
        "send_text.json",
        lambda c: c.send(
            TO, Text(body="Your order shipped: https://example.com/track/123", preview_url=True)
        ),
    ),
    (
        "send_text_contextual_reply.json",
        lambda c: c.send(
            "15550002222", Text(body="Replying to your question"), reply_to="wamid.IN_TEXT_0001"
        ),
    ),
    (
        "send_image_by_id.json",
        lambda c: c.send(TO, Media(media_type="image", media_id="300000000000010", caption="Your receipt")),
    ),
    (
        "send_image_by_link.json",
        lambda c: c.send(
            TO,
            Media(media_type="image", link="https://example.com/media/receipt.png", caption="Your receipt"),
        ),
    ),
    (
        "send_document.json",
        lambda c: c.send(
            TO,
            Media(
                media_type="document",
                media_id="300000000000011",
                filename="invoice-123.pdf",
                caption="Invoice (PDF)",
            ),
        ),
    ),
    (
        "send_audio_voice.json",
        lambda c: c.send(TO, Media(media_type="audio", media_id="300000000000012", voice=True)),
    ),
    (
        "send_video.json",
        lambda c: c.send(
            TO,
            Media(media_type="video", link="https://example.com/media/howto.mp4", caption="How to assemble"),
        ),
    ),
    (
        "send_template.json",
        lambda c: c.send(
            TO, Template(name="order_confirmation", language="en_US", body_params=("Alex", "ORDER-123"))
        ),
    ),
    (
        "send_interactive_button.json",
        lambda c: c.send(
            TO,
            Buttons(
                body="Your appointment is tomorrow at 9am. Need to change it?",
                buttons=(
                    ReplyButton(id="keep", title="Keep"),
                    ReplyButton(id="reschedule", title="Reschedule"),
                    ReplyButton(id="cancel", title="Cancel"),
                ),
                header="Appointment",
                footer="Example Clinic",
            ),
        ),
    ),
    (
        "send_interactive_list.json",
        lambda c: c.send(
            TO,
            ListMessage(
                body="Which shipping option do you prefer?",
                button="Choose option",
                sections=(
                    ListSection(
                        title="Fast",
                        rows=(
                            ListRow(id="priority_express", title="Priority Express", description="Next day"),
                            ListRow(id="priority", title="Priority", description="1-3 days"),
                        ),
                    ),
                    ListSection(
                        title="Cheap", rows=(ListRow(id="ground", title="Ground", description="2-5 days"),)
                    ),
                ),
                header="Shipping options",
                footer="Example Store",
            ),
        ),
    ),
    ("send_reaction.json", lambda c: c.send(TO, Reaction(message_id="wamid.IN_TEXT_0001", emoji="👍"))),
]
HI = Text(body="hi")


@pytest.mark.parametrize(("filename", "call"), SEND_CASES, ids=[case[0] for case in SEND_CASES])
async def test_send_body_matches_payload_file(client: WhatsAppClient, filename: str, call: SendCall) -> None:
    expected = payload(filename)
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, payload=payload("response_send_success.json"))
        result = await call(client)
        (request,) = requests_to(mock, MESSAGES_URL)
    assert_matches(sent_json(request), expected)
    assert request.kwargs["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert result == SendResult("wamid.OUT_0001", "15550002222", payload("response_send_success.json"))


@pytest.mark.parametrize(
    ("filename", "typing"), [("send_mark_read.json", False), ("send_typing_indicator.json", True)]
)
async def test_mark_read_body(client: WhatsAppClient, filename: str, typing: bool) -> None:
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, payload=payload("response_mark_read_success.json"))
        await client.mark_read("wamid.IN_TEXT_0001", typing=typing)
        (request,) = requests_to(mock, MESSAGES_URL)
    assert sent_json(request) == payload(filename)


async def test_mark_read_without_success_is_an_error(client: WhatsAppClient) -> None:
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, payload={"success": False})
        with pytest.raises(errors.UnexpectedResponse):
            await client.mark_read("wamid.X")


@pytest.mark.parametrize("body", [{"messaging_product": "whatsapp", "messages": []}, {"messages": [{}]}, {}])
async def test_success_status_without_wamid_is_an_error(client: WhatsAppClient, body: dict[str, Any]) -> None:
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, payload=body)
        with pytest.raises(errors.UnexpectedResponse) as info:
            await client.send(TO, HI)
    assert info.value.retryable and info.value.code == errors.CODE_UNEXPECTED


async def test_success_status_with_non_json_body_is_an_error(client: WhatsAppClient) -> None:
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, body="<html>ok</html>", content_type="text/html")
        with pytest.raises(errors.UnexpectedResponse):
            await client.send(TO, HI)


@pytest.mark.parametrize(
    ("status", "filename", "cls"),
    [
        (400, "error_130429.json", errors.RateLimitHit),
        (429, "error_130429.json", errors.RateLimitHit),
        (400, "error_131047.json", errors.ReEngagement),
        (401, "error_190.json", errors.AccessTokenExpired),
        (500, "error_131000.json", errors.UnknownError),
    ],
)
async def test_http_errors_raise_by_code(
    client: WhatsAppClient, status: int, filename: str, cls: type[errors.GraphError]
) -> None:
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, status=status, payload=payload(filename))
        with pytest.raises(cls) as info:
            await client.send(TO, HI)
    assert info.value.http_status == status
    assert info.value.code == payload(filename)["error"]["code"]


async def test_rate_limit_with_400_is_retryable(client: WhatsAppClient) -> None:
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, status=400, payload=payload("error_130429.json"))
        with pytest.raises(errors.GraphError) as info:
            await client.send(TO, HI)
    assert info.value.retryable


async def test_garbage_502_is_retryable(client: WhatsAppClient) -> None:
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, status=502, body="<html>502 Bad Gateway</html>", content_type="text/html")
        with pytest.raises(errors.ServerError) as info:
            await client.send(TO, HI)
    assert info.value.retryable and info.value.http_status == 502


async def test_timeout_is_transport_error(client: WhatsAppClient) -> None:
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, exception=TimeoutError())
        with pytest.raises(errors.TransportError) as info:
            await client.send(TO, HI)
    assert info.value.retryable and info.value.code == -1


async def test_connection_refused_is_transport_error(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = WhatsAppClient(HttpTransport(session, f"http://127.0.0.1:{port}/v21.0", TOKEN), PNID)
    with pytest.raises(errors.TransportError) as info:
        await client.send(TO, HI)
    assert info.value.title.startswith("transport error: ")
    assert info.value.retryable


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.send(TO, Buttons(body="Pick", buttons=tuple(_buttons("abcd")))),
        lambda c: c.send(TO, Buttons(body="Pick", buttons=(ReplyButton(id="a", title="x" * 21),))),
        lambda c: c.send(
            TO,
            ListMessage(
                body="Pick",
                button="Open",
                sections=(ListSection(rows=tuple(ListRow(id=f"r{i}", title=f"Row {i}") for i in range(11))),),
            ),
        ),
        lambda c: c.send(TO, Text(body="x" * 4097)),
        lambda c: c.send(TO, Media(media_type="image", caption="no media")),
    ],
    ids=["4 buttons", "21-char title", "11 rows", "long text", "no media"],
)
async def test_limits_refused_before_http(client: WhatsAppClient, call: SendCall) -> None:
    with aioresponses() as mock:
        with pytest.raises(ValidationError):
            await call(client)
        assert mock.requests == {}


def _buttons(ids: str) -> list[ReplyButton]:
    return [ReplyButton(id=i, title=i.upper()) for i in ids]


class RecordingPacer(Pacer):
    def __init__(self) -> None:
        super().__init__()
        self.acquired: list[str] = []

    async def acquire(self, recipient: str) -> None:
        self.acquired.append(recipient)
        await super().acquire(recipient)


async def test_send_is_paced_unless_asked_not_to(session: aiohttp.ClientSession) -> None:
    pacer = RecordingPacer()
    client = WhatsAppClient(HttpTransport(session, BASE, TOKEN), PNID, pacer)
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, payload=payload("response_send_success.json"))
        mock.post(MESSAGES_URL, payload=payload("response_send_success.json"))
        mock.post(MESSAGES_URL, payload=payload("response_mark_read_success.json"))
        await client.send(TO, Text(body="paced"))
        await client.send(TO, Text(body="not paced"), pace=False)
        await client.mark_read("wamid.X")
    assert pacer.acquired == [TO]


async def test_pair_rate_limit_holds_only_that_recipient(session: aiohttp.ClientSession) -> None:
    pacer = Pacer()
    client = WhatsAppClient(HttpTransport(session, BASE, TOKEN), PNID, pacer)
    with aioresponses() as mock:
        mock.post(MESSAGES_URL, status=400, payload=payload("error_131056.json"))
        with pytest.raises(errors.PairRateLimit) as info:
            await client.send(TO, HI)
    assert info.value.per_recipient
    assert pacer.delay_for(TO) >= 1.0  # 4**0 s, jittered up
    assert pacer.delay_for("+15550003333") == 0.0


async def test_upload_media_and_get_url_and_download(
    session: aiohttp.ClientSession, aiohttp_server: AiohttpServer
) -> None:
    seen: dict[str, Any] = {}

    async def upload(request: web.Request) -> web.Response:
        form = await request.post()
        file = form["file"]
        assert isinstance(file, web.FileField)
        seen.update(
            auth=request.headers.get("Authorization"),
            messaging_product=form["messaging_product"],
            type=form["type"],
            filename=file.filename,
            content_type=file.content_type,
            data=file.file.read(),
        )
        return web.json_response(payload("response_media_upload.json"))

    async def media_url(request: web.Request) -> web.Response:
        seen["query"] = dict(request.query)
        return web.json_response(payload("response_media_get_url.json"))

    async def download(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response(payload("error_190.json"), status=401)
        return web.Response(body=b"\x89PNG", content_type="image/png")

    app = web.Application()
    app.router.add_post(f"/v21.0/{PNID}/media", upload)
    app.router.add_get("/v21.0/{media_id}", media_url)
    app.router.add_get("/download", download)
    server = await aiohttp_server(app)
    client = WhatsAppClient(HttpTransport(session, str(server.make_url("/v21.0")), TOKEN), PNID)

    media_id = await client.upload_media(b"\x89PNG...", "image/png", "photo.png")
    assert media_id == "300000000000010"
    assert seen == {
        "auth": f"Bearer {TOKEN}",
        "messaging_product": "whatsapp",
        "type": "image/png",
        "filename": "photo.png",
        "content_type": "image/png",
        "data": b"\x89PNG...",
    }
    info = await client.get_media_url("300000000000001")
    assert info == payload("response_media_get_url.json")
    assert seen["query"] == {"phone_number_id": PNID}
    assert await client.download_media(str(server.make_url("/download"))) == b"\x89PNG"


async def test_against_fake_graph(session: aiohttp.ClientSession, aiohttp_server: AiohttpServer) -> None:
    server = await aiohttp_server(fake_graph_app(token=TOKEN))
    base = str(server.make_url("/v21.0"))
    client = WhatsAppClient(HttpTransport(session, base, TOKEN), PNID, Pacer())
    result = await client.send("15550002222", Text(body="Hello #7"), reply_to="wamid.IN_1")
    assert result.wamid.startswith("wamid.FAKE") and result.wa_id == TO
    await client.mark_read("wamid.IN_1", typing=True)
    assert await client.upload_media(b"data", "application/pdf", "a.pdf")
    async with session.get(server.make_url("/dump")) as response:
        dump = await response.json()
    assert [row[1:5] for row in dump] == [[TO, "text", "wamid.IN_1", result.wamid]]

    wrong = WhatsAppClient(HttpTransport(session, base, "wrong-token"), PNID)
    with pytest.raises(errors.AccessTokenExpired) as info:
        await wrong.send(TO, HI)
    assert info.value.http_status == 401 and not info.value.retryable


async def test_a_send_goes_as_the_json_of_its_body_over_http(
    session: aiohttp.ClientSession, aiohttp_server: AiohttpServer
) -> None:
    """What reaches the server: Content-Type application/json, the token, and a body that parses to
    the request body, text beyond ASCII (accents, an emoji) included, escaped as json.dumps escapes it."""
    seen: list[tuple[str, str, bytes]] = []

    async def messages(request: web.Request) -> web.Response:
        seen.append((request.content_type, request.headers["Authorization"], await request.read()))
        return web.json_response(payload("response_send_success.json"))

    app = web.Application()
    app.router.add_post(f"/v21.0/{PNID}/messages", messages)
    server = await aiohttp_server(app)
    client = WhatsAppClient(HttpTransport(session, str(server.make_url("/v21.0")), TOKEN), PNID)
    message = Text(body="Café ☕ – déjà vu 👍")
    await client.send(TO, message, reply_to="wamid.IN_1")
    ((content_type, authorization, body),) = seen
    expected = to_request_body(TO, message, "wamid.IN_1")
    assert (content_type, authorization) == ("application/json", f"Bearer {TOKEN}")
    assert json.loads(body) == expected
    assert body == json.dumps(expected, separators=(",", ":")).encode()


async def test_fake_graph_throttling_and_timeout(
    session: aiohttp.ClientSession, aiohttp_server: AiohttpServer
) -> None:
    throttled = await aiohttp_server(fake_graph_app(token=TOKEN, fail_every=1))
    client = WhatsAppClient(HttpTransport(session, str(throttled.make_url("/v21.0")), TOKEN), PNID)
    with pytest.raises(errors.RateLimitHit) as info:
        await client.send(TO, HI)
    assert info.value.http_status == 429 and info.value.retryable

    slow = await aiohttp_server(fake_graph_app(token=TOKEN, latency_ms=500))
    transport = HttpTransport(session, str(slow.make_url("/v21.0")), TOKEN, timeout=0.05)
    with pytest.raises(errors.TransportError):
        await WhatsAppClient(transport, PNID).send(TO, HI)


async def test_a_relayed_file_goes_as_a_copy_made_through_the_cloud_api(
    session: aiohttp.ClientSession, aiohttp_server: AiohttpServer
) -> None:
    server = await aiohttp_server(fake_graph_app(token=TOKEN))
    photo = b"\xff\xd8\xff a photo of the screen"
    await receive_file(server, "300000000000001", photo, "image/jpeg")
    client = WhatsAppClient(HttpTransport(session, str(server.make_url("/v21.0")), TOKEN), PNID, Pacer())

    relayed = Media(media_type="image", relayed_media_id="300000000000001", caption="Fixed!")
    result = await client.send(TO, relayed)

    [[uploaded_id, mime_type, filename, sha256]] = await fake_graph_json(server, "/uploads")
    assert (mime_type, filename, sha256) == ("image/jpeg", "file.jpg", hashlib.sha256(photo).hexdigest())
    [body] = await fake_graph_json(server, "/dump?bodies=1")
    assert body["type"] == "image" and body["image"] == {"id": uploaded_id, "caption": "Fixed!"}
    assert result.wamid.startswith("wamid.FAKE")


async def test_a_relayed_file_too_large_to_send_is_refused_for_good(
    session: aiohttp.ClientSession, aiohttp_server: AiohttpServer
) -> None:
    server = await aiohttp_server(fake_graph_app(token=TOKEN))
    big = b"x" * (5 * 1024 * 1024 + 1)  # images: 5 MB at most
    await receive_file(server, "300000000000002", big, "image/png")
    client = WhatsAppClient(HttpTransport(session, str(server.make_url("/v21.0")), TOKEN), PNID, Pacer())

    with pytest.raises(errors.MediaError) as info:
        await client.send(TO, Media(media_type="image", relayed_media_id="300000000000002"))
    assert info.value.code == 131053 and not info.value.retryable
    assert "at most 5 MB" in info.value.title
    assert await fake_graph_json(server, "/uploads") == []  # nothing uploaded, nothing sent
    assert await fake_graph_json(server, "/dump") == []


def test_a_relayed_file_cannot_be_sent_as_it_is() -> None:
    with pytest.raises(ValueError, match="sent as its copy"):
        Media(media_type="image", relayed_media_id="300000000000001").type_object()
    with pytest.raises(ValueError, match="exactly one of"):
        Media(media_type="image", media_id="1", relayed_media_id="300000000000001")


def test_http_transport_repr_hides_token(session: aiohttp.ClientSession) -> None:
    assert TOKEN not in repr(HttpTransport(session, BASE, TOKEN))


async def test_sandbox_records_and_never_calls_out() -> None:
    lines: list[str] = []
    sandbox = SandboxTransport(echo=lines.append)
    client = WhatsAppClient(sandbox, PNID, Pacer())
    with aioresponses() as mock:  # any real HTTP call would fail here
        first = await client.send("15550002222", Text(body="Hello"))
        buttons = (ReplyButton(id="a", title="Yes"), ReplyButton(id="b", title="No"))
        second = await client.send(TO, Buttons(body="Pick one", buttons=buttons))
        await client.send(TO, Media(media_type="image", link="https://example.com/x.png", caption="Photo"))
        await client.mark_read("wamid.IN_1")
        media_id = await client.upload_media(b"abc", "image/png", "x.png")
        info = await client.get_media_url(media_id)
        assert mock.requests == {}
    assert first.wamid.startswith("wamid.SANDBOX.") and first.wa_id == "15550002222"
    assert second.wamid != first.wamid
    # a restarted sandbox never hands out a wamid the previous run used (they are stored as unique)
    again = await WhatsAppClient(SandboxTransport(echo=lines.append), PNID, Pacer()).send(TO, Text(body="Hi"))
    assert again.wamid not in {first.wamid, second.wamid}
    assert info["id"] == media_id and await client.download_media(info["url"]) == b""
    assert lines[0] == "[sandbox] → +15550002222 text: Hello"
    assert lines[1] == "[sandbox] → +15550002222 interactive: Pick one [Yes] [No]"
    assert lines[2] == "[sandbox] → +15550002222 image: https://example.com/x.png Photo"
    assert lines[3] == "[sandbox] ✓ read wamid.IN_1"
    assert len(sandbox.requests) == 5
    assert sandbox.requests[0]["text"] == {"body": "Hello", "preview_url": False}
    assert sandbox.requests[3] == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN_1",
    }
    assert sandbox.requests[4]["file"] == {"filename": "x.png", "mime_type": "image/png", "size": 3}
