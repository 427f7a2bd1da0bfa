"""The JSON error bodies every API of the bot answers with, in one shape a shop's system can rely on:
`{"error": "..."}`, and for invalid input 422 `{"error": "invalid <thing>", "errors": [{"field", "message"}]}`
naming each field in words a person can act on."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_ROW_ID = 2**31 - 1
"""The largest id an integer primary key holds on both databases: an id from outside above it names
no row (and would overflow the query), so it is refused at the boundary."""
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    message: str


def field_errors(
    exc: ValidationError, fields: Sequence[str], hints: Mapping[str, str] | None = None
) -> list[FieldError]:
    """pydantic's errors as (top-level field, reason) pairs; `hints` rewords an error type."""
    errors = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "body"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field; the fields are: {', '.join(fields)}"
        elif error["type"] == "missing":
            message = "required"
        elif hints and error["type"] in hints:
            message = hints[error["type"]]
        errors.append(FieldError(field=location.split(".")[0], message=message))
    return errors


def dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)


def invalid(what: str, errors: Sequence[FieldError]) -> web.Response:
    body = {"error": f"invalid {what}", "errors": [error.model_dump() for error in errors]}
    return web.Response(text=dumps(body), status=422, content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def path_id(request: web.Request, key: str, not_found: str) -> int:
    """A row id from the URL: 404 (never 500) for anything that cannot be one, however long."""
    text = request.match_info[key]
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not 0 < int(text) <= MAX_ROW_ID:
        raise web.HTTPNotFound(text=dumps({"error": not_found}), content_type="application/json")
    return int(text)


def bearer_token(request: web.Request) -> str:
    """The token of an `Authorization: Bearer ...` header, or "" when there is none."""
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


def unauthorized(message: str, realm: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=dumps({"error": message}),
        content_type="application/json",
        headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
    )


Body = TypeVar("Body", bound=BaseModel)


async def validated_body(
    request: web.Request,
    model: type[Body],
    what: str,
    errors: Callable[[ValidationError], list[FieldError]],
    context: dict[str, Any] | None = None,
) -> Body:
    """The JSON body as `model`; 400 when it is not JSON, 422 naming each field that does not fit."""
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}", context=context)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise web.HTTPBadRequest(
                text='{"error": "the body is not valid JSON"}', content_type="application/json"
            ) from None
        raise web.HTTPUnprocessableEntity(
            text=invalid(what, errors(exc)).text, content_type="application/json"
        ) from None
