"""The request body cap: refused before the operation (and its key check) reads any of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import Depends, FastAPI, Request

from shared.http.body_limit import BodyLimit
from shared.http.problems import install_problem_handlers

LIMIT = 1024


def capped_app(calls: list[str]) -> FastAPI:
    async def key_check(request: Request) -> None:
        calls.append("key check")

    app = FastAPI(dependencies=[Depends(key_check)])
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=LIMIT)

    @app.post("/things")
    async def create(thing: dict[str, str]) -> dict[str, int]:
        return {"fields": len(thing)}

    return app


async def post(app: FastAPI, content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/things", content=content, headers={"Content-Type": "application/json"})


async def test_a_body_announced_over_the_cap_is_refused_unread() -> None:
    calls: list[str] = []
    answer = await post(capped_app(calls), b'{"a": "' + b"x" * 2 * LIMIT + b'"}')
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == f"the request body is over {LIMIT:,} bytes"
    assert calls == []  # no key check, no parsing


async def test_a_body_streamed_past_the_cap_is_refused() -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        yield b'{"a": "'
        for _ in range(4):
            yield b"x" * (LIMIT // 2)
        yield b'"}'

    calls: list[str] = []
    answer = await post(capped_app(calls), chunks())
    assert answer.status_code == 413 and calls == []


async def test_a_body_within_the_cap_goes_through() -> None:
    calls: list[str] = []
    answer = await post(capped_app(calls), b'{"a": "b", "c": "d"}')
    assert answer.status_code == 200 and answer.json() == {"fields": 2}
    assert calls == ["key check"]
