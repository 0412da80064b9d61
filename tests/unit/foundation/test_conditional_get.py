"""Conditional GET (RFC 9110 13.1.2): a GET whose 200 carries an ETag answers ``If-None-Match``
naming it (weak comparison) or ``*`` with 304 Not Modified, the ETag and no body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response

from services.intake.app import create_app as intake_app
from services.router.app import create_app as router_app
from shared.http.conditional import ConditionalGet
from shared.http.preconditions import none_match
from shared.settings import IntakeSettings, RouterSettings

TAG = 'W/"team-access-3.5f1c09e2a4b7d3c8"'


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (TAG, True),
        ('"team-access-3.5f1c09e2a4b7d3c8"', True),  # weak comparison: W/ or not, the same tag
        ('W/"team-access-2.5f1c09e2a4b7d3c8"', False),
        ("*", True),
        (f'W/"other-1", {TAG}', True),
        (f' , W/"other-1" ,, {TAG} ', True),
        ('W/"other-1"', False),
        ("team-access-3.5f1c09e2a4b7d3c8", False),  # unquoted: not a list of entity-tags
        (f"*, {TAG}", False),  # "*" is only ever the whole field
        ("", False),
        (None, False),
    ],
)
def test_weak_comparison(header: str | None, matches: bool) -> None:
    assert none_match(header, TAG) is matches


def app() -> FastAPI:
    api = FastAPI()

    @api.get("/tagged")
    async def tagged(response: Response) -> dict[str, int]:
        response.headers["ETag"] = TAG
        response.headers["Cache-Control"] = "no-cache"
        return {"revision": 3}

    @api.get("/untagged")
    async def untagged() -> dict[str, int]:
        return {"revision": 3}

    @api.get("/missing", status_code=404)
    async def missing(response: Response) -> dict[str, str]:
        response.headers["ETag"] = TAG
        return {"detail": "gone"}

    @api.put("/tagged")
    async def put(response: Response) -> dict[str, int]:
        response.headers["ETag"] = TAG
        return {"revision": 3}

    api.add_middleware(ConditionalGet)
    return api


async def request(method: str, path: str, **headers: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, headers=headers)


async def test_a_matching_tag_is_not_modified() -> None:
    got = await request("GET", "/tagged", **{"If-None-Match": TAG})
    assert got.status_code == 304
    assert got.content == b""
    assert got.headers["ETag"] == TAG and got.headers["Cache-Control"] == "no-cache"
    assert "content-type" not in got.headers and "content-length" not in got.headers
    assert (await request("GET", "/tagged", **{"If-None-Match": "*"})).status_code == 304


async def test_otherwise_the_full_answer() -> None:
    other = await request("GET", "/tagged", **{"If-None-Match": 'W/"team-access-2.5f1c09e2a4b7d3c8"'})
    assert other.status_code == 200 and other.json() == {"revision": 3}
    assert (await request("GET", "/tagged")).status_code == 200
    assert (await request("GET", "/untagged", **{"If-None-Match": "*"})).status_code == 200
    assert (await request("GET", "/missing", **{"If-None-Match": TAG})).status_code == 404
    # Not a GET: If-None-Match on a change is a precondition the services do not offer; ignored.
    assert (await request("PUT", "/tagged", **{"If-None-Match": TAG})).status_code == 200


@pytest.mark.parametrize("make", [lambda: router_app(RouterSettings()), lambda: intake_app(IntakeSettings())])
def test_every_tagged_get_documents_it(make: Any) -> None:
    paths = make().openapi()["paths"]
    tagged = [
        (path, item["get"])
        for path, item in paths.items()
        if "get" in item and "ETag" in item["get"]["responses"].get("200", {}).get("headers", {})
    ]
    assert tagged
    for path, op in tagged:
        assert "ETag" in op["responses"]["304"]["headers"], path
        assert "content" not in op["responses"]["304"], path
        assert any(p["in"] == "header" and p["name"] == "If-None-Match" for p in op["parameters"]), path
