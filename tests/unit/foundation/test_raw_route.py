"""Raw routes: documented by FastAPI, called by Starlette with the bare request, errors handled by
the app's problem handlers; hot routes go first among the app's routes."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from shared.http.problems import Problem, install_problem_handlers
from shared.http.raw_route import RawRoute, add_routes_first


class Echo(BaseModel):
    size: int


def raw_app() -> FastAPI:
    router = APIRouter(prefix="/v1", route_class=RawRoute)

    @router.post("/echo", status_code=202, response_model=Echo, responses={409: {"description": "Said no"}})
    async def echo(request: Request) -> Response:
        body = await request.body()
        if body == b"no":
            raise Problem(409, "Conflict", "the body said no")
        answer = Echo(size=len(body)).model_dump_json()
        return Response(answer, status_code=202, media_type="application/json")

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/v1/{anything}")
    async def catch_all(anything: str) -> dict[str, str]:
        return {"caught": anything}

    add_routes_first(app, router)
    return app


async def test_endpoint_gets_the_request_and_problems_reach_the_handlers() -> None:
    app = raw_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        ok = await client.post("/v1/echo", content=b"12345")
        refused = await client.post("/v1/echo", content=b"no")
    assert (ok.status_code, ok.json()) == (202, {"size": 5})
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"] == "the body said no"


def test_raw_routes_are_documented_like_any_route() -> None:
    operation = raw_app().openapi()["paths"]["/v1/echo"]["post"]
    assert set(operation["responses"]) >= {"202", "409"}
    assert operation["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Echo"
    }
    assert "parameters" not in operation  # the Request parameter is not a documented input


async def test_routes_added_first_are_matched_before_the_apps_own() -> None:
    app = raw_app()
    first = app.router.routes[0]
    assert isinstance(first, APIRoute) and first.path == "/v1/echo"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/v1/other")).json() == {"caught": "other"}  # the rest still route


def test_endpoints_that_need_fastapi_parameters_are_refused() -> None:
    router = APIRouter(route_class=RawRoute)

    async def with_path_parameter(name: str) -> Response:
        return Response(name)

    def not_async(request: Request) -> Response:
        return Response()

    async def ok(request: Request) -> Response:
        return Response()

    with pytest.raises(TypeError, match="exactly one Request"):
        router.add_api_route("/a/{name}", with_path_parameter, methods=["GET"])
    with pytest.raises(TypeError, match="async"):
        router.add_api_route("/b", not_async, methods=["GET"])
    with pytest.raises(TypeError, match="without dependencies"):  # would be skipped silently
        router.add_api_route("/c", ok, methods=["GET"], dependencies=[Depends(lambda: None)])


def test_only_path_operations_can_go_first() -> None:
    router = APIRouter()
    router.add_route("/plain", lambda request: Response())
    with pytest.raises(TypeError, match="only path operations"):
        add_routes_first(FastAPI(), router)


async def test_an_unexpected_error_is_answered_as_problem_json() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise TypeError("secret-ish internals")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/boom")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["title"] == "Internal error" and "internals" not in answer.text
