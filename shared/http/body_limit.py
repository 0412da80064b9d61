"""A cap on request bodies, applied before anything reads them.

FastAPI reads and parses an operation's JSON body before its dependencies run, the API key check
included: without a cap an anonymous client could make a service buffer and parse any amount. A
body announced larger than the cap (``Content-Length``) is refused before a byte of it is read;
one streamed without a length is read here up to the cap and refused once it passes it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.problems import Problem, problem_response


def _too_large(limit: int) -> Problem:
    return Problem(413, "Payload too large", f"the request body is over {limit:,} bytes")


class BodyLimit:
    """ASGI middleware: 413 (problem+json) for a request body over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        if length:  # announced within the cap; the server holds the client to what it announced
            await self.app(scope, receive, send)
            return
        # Streamed without a length: read up to the cap here, then hand the body on as one message
        # (the operation's own parser would turn an error raised while it reads into a 400).
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # a disconnect, if the app waits for one
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(_too_large(self.max_bytes), scope["path"])(scope, receive, send)
