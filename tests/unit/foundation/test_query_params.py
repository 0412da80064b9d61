"""A single-valued query parameter given twice (``?limit=5&limit=10``) is a 400 naming
``/query/<name>``: FastAPI took one of them silently. A list parameter takes as many as it is sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel

from shared.http.problems import PROBLEM_JSON, install_problem_handlers
from shared.http.query_params import refuse_unknown_query, takes_several


class Filters(BaseModel):
    """A query parameter model: its fields are the operation's parameters."""

    status: str | None = None
    tag: list[str] = []


def checked_app() -> FastAPI:
    router = APIRouter(prefix="/v1")

    @router.get("/rows")
    async def rows(
        limit: int = Query(10), names: Annotated[list[str] | None, Query()] = None
    ) -> dict[str, object]:
        return {"limit": limit, "names": names}

    @router.get("/filtered")
    async def filtered(filters: Annotated[Filters, Query()]) -> dict[str, object]:
        return filters.model_dump()

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router, dependencies=[Depends(refuse_unknown_query)])
    return app


async def get(path: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=checked_app()), base_url="http://t"
    ) as client:
        return await client.get(path)


def refused_at(response: httpx.Response, *fields: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert [e["field"] for e in response.json()["errors"]] == list(fields), response.json()


async def test_a_single_valued_parameter_given_twice_is_refused_naming_it() -> None:
    twice = await get("/v1/rows?limit=5&limit=10")
    refused_at(twice, "/query/limit")
    assert "limit" in twice.json()["detail"] and "once" in twice.json()["detail"]
    assert "once" in twice.json()["errors"][0]["message"]
    refused_at(await get("/v1/rows?limit=5&limit=5"), "/query/limit")  # even with one value
    refused_at(await get("/v1/filtered?status=a&status=b"), "/query/status")
    # Unknown and repeated are both named, each once.
    refused_at(await get("/v1/rows?limit=1&x=1&limit=2&x=2"), "/query/x", "/query/limit")


async def test_a_list_parameter_takes_each_value_given() -> None:
    listed = await get("/v1/rows?names=a&names=b&limit=3")
    assert listed.status_code == 200 and listed.json() == {"limit": 3, "names": ["a", "b"]}
    tagged = await get("/v1/filtered?tag=a&tag=b&status=open")
    assert tagged.status_code == 200 and tagged.json() == {"status": "open", "tag": ["a", "b"]}
    assert (await get("/v1/rows?limit=3")).status_code == 200


def test_list_types_take_several_values_and_others_one() -> None:
    several = [
        list[str],
        list[int] | None,
        Annotated[list[str], "x"],
        set[str],
        tuple[int, ...],
        Sequence[str],
    ]
    assert all(takes_several(kind) for kind in several)
    assert not any(
        takes_several(kind) for kind in [str, int, bytes, str | None, Annotated[int, "x"], dict[str, str]]
    )
