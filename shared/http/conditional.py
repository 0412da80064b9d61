"""Conditional GET (RFC 9110 13.1.2, 15.4.5): ``If-None-Match`` naming the ETag a GET answers
with (or ``*``) gets 304 Not Modified, with that ETag and no body.

One ASGI middleware rather than code in each endpoint: every resource with an ETag (teams, rule
sets, SLA configurations, write-back targets, intake sources) sets it on its 200, so the check is
the same everywhere and a new tagged endpoint gets it without a line. The endpoint still runs
(its ETag comes from the row it reads, and its key check must answer first: no 304 tells an
anonymous client what exists); what a match saves is the body on the wire and the client's parse.
:func:`install_conditional_get` also adds the 304 and the header to the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.preconditions import none_match

# What a 304 carries of the 200 it replaces (RFC 9110 15.4.5): the validator and the caching
# fields a 200 would have sent. Content-Type and Content-Length describe a body it has not.
_KEPT = frozenset({b"etag", b"cache-control", b"content-location", b"date", b"expires", b"vary"})
_READS = frozenset({"GET", "HEAD"})


class ConditionalGet:
    """ASGI middleware: a GET or HEAD answered 200 with an ETag that ``If-None-Match`` names -> 304."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _READS:
            await self.app(scope, receive, send)
            return
        # Several field lines are one comma-separated list (RFC 9110 5.3).
        lines = [value.decode("latin-1") for name, value in scope["headers"] if name == b"if-none-match"]
        if not lines:
            await self.app(scope, receive, send)
            return
        if_none_match = ", ".join(lines)
        replaced = False

        async def answer(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                tag = next((v.decode("latin-1") for n, v in headers if n.lower() == b"etag"), None)
                if tag is not None and none_match(if_none_match, tag):
                    replaced = True
                    kept = [(n, v) for n, v in headers if n.lower() in _KEPT]
                    message = {**message, "status": 304, "headers": kept}
            elif message["type"] == "http.response.body" and replaced:
                if message.get("more_body", False):
                    return  # the body is dropped; the response ends with the last part
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, receive, answer)


_NOT_MODIFIED = "Not modified: If-None-Match names the current ETag (or is *); no body"


def install_conditional_get(app: FastAPI) -> None:
    """The middleware, and its answers in ``app``'s OpenAPI document."""
    app.add_middleware(ConditionalGet)
    document_conditional_get(app)


def document_conditional_get(app: FastAPI) -> None:
    """Declare, on every GET whose 200 carries an ETag, the ``If-None-Match`` header and the 304."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI; what follows changes nothing the second time
        for item in schema.get("paths", {}).values():
            operation = item.get("get")
            if operation is None:
                continue
            etag = operation.get("responses", {}).get("200", {}).get("headers", {}).get("ETag")
            if etag is None:
                continue
            operation["responses"].setdefault(
                "304", {"description": _NOT_MODIFIED, "headers": {"ETag": etag}}
            )
            parameters = operation.setdefault("parameters", [])
            if not any(p.get("in") == "header" and p.get("name") == "If-None-Match" for p in parameters):
                parameters.append(
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "description": "ETags you hold (or *): 304 if one is current (weak comparison)",
                        "schema": {"type": "string"},
                    }
                )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
