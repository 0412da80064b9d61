"""Every service's OpenAPI document says what its errors are: problem+json bodies, and the 413 and
415 its shared guards answer before an operation taking a body runs."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import Message, Scope

from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from services.router.app import create_app as router_app
from shared.db.storable import NUL_MESSAGE
from shared.http.problems import PROBLEM_JSON
from shared.settings import IntakeSettings, MetricsSettings, RouterSettings

APPS = {
    "router": lambda: router_app(RouterSettings()),
    "intake": lambda: intake_app(IntakeSettings()),
    "metrics": lambda: metrics_app(MetricsSettings()),
}


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    paths = app.openapi()["paths"]
    return [(method.upper(), path, op) for path, item in paths.items() for method, op in item.items()]


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_declared_error_is_problem_json(service: str) -> None:
    app = APPS[service]()
    wrong = [
        (method, path, code)
        for method, path, op in operations(app)
        for code, response in op["responses"].items()
        if code[0] in "45" and list(response.get("content", {})) != [PROBLEM_JSON]
        if (method, path, code) != ("GET", "/readyz", "503")  # a probe's report: below
    ]
    assert wrong == [], "FastAPI's default 422 (application/json HTTPValidationError) is never sent"
    assert "HTTPValidationError" not in app.openapi().get("components", {}).get("schemas", {})


def test_operations_taking_a_body_declare_the_guards_answers() -> None:
    router = APPS["router"]()
    for method, path, op in operations(router):
        if "requestBody" in op:
            assert {"413", "415"} <= set(op["responses"]), (method, path, sorted(op["responses"]))
    intake = dict(((m, p), op) for m, p, op in operations(APPS["intake"]()))
    for key in (("POST", "/v1/sources"), ("PATCH", "/v1/sources/{name}")):
        assert {"413", "415"} <= set(intake[key]["responses"]), key
    # POST /v1/tickets answers a wrong Content-Type with 422, not 415: nothing is made up.
    tickets = intake[("POST", "/v1/tickets")]["responses"]
    assert "413" in tickets and "415" not in tickets


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_keyed_operation_declares_its_401_and_403(service: str) -> None:
    undeclared = [
        (method, path)
        for method, path, op in operations(APPS[service]())
        if path.startswith("/v1/") and not path.startswith("/v1/webhooks/")  # signed, not keyed
        if not {"401", "403"} <= set(op["responses"])
    ]
    assert undeclared == []


@pytest.mark.parametrize("service", sorted(APPS))
def test_preconditions_declare_the_etag_and_unavailability_its_retry_after(service: str) -> None:
    for method, path, op in operations(APPS[service]()):
        responses = op["responses"]
        for code in ("412", "428"):
            if code in responses:
                assert "ETag" in responses[code].get("headers", {}), (method, path, code)
        if path.startswith("/v1/"):
            assert "Retry-After" in responses.get("503", {}).get("headers", {}), (method, path)


@pytest.mark.parametrize("service", sorted(APPS))
def test_probes_and_the_exposition_declare_what_they_answer(service: str) -> None:
    # /readyz's 503 (not ready) was undocumented, its 200 and /healthz's bodies had no schema, and
    # /metrics declared JSON for Prometheus' text: a client generated from the document, or a
    # fuzzer checking answers against it, read them wrong.
    spec = APPS[service]().openapi()
    ops = {path: spec["paths"][path]["get"]["responses"] for path in ("/readyz", "/healthz", "/metrics")}
    for code in ("200", "503"):
        schema = ops["/readyz"][code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Readiness"}
    readiness = spec["components"]["schemas"]["Readiness"]
    assert set(readiness["required"]) == {"status", "checks"}
    assert readiness["properties"]["status"]["enum"] == ["ready", "degraded", "unavailable"]
    assert "Liveness" in ops["/healthz"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert list(ops["/metrics"]["200"]["content"]) == [CONTENT_TYPE_LATEST]


def test_only_an_operation_that_can_answer_422_declares_it() -> None:
    # FastAPI declares a 422 for every operation with a parameter. GET /metrics takes only name[],
    # any strings, and no app-wide guard refuses a probe's or a scraper's query (the router's
    # refuse_nul passes them by): its 422 could never be answered.
    declared = {
        (service, method, path): "422" in op["responses"]
        for service, make in APPS.items()
        for method, path, op in operations(make())
        if op.get("parameters") or "requestBody" in op
    }
    for service in APPS:
        assert declared.pop((service, "GET", "/metrics")) is False
    assert [operation for operation, has_422 in declared.items() if not has_422] == []


@pytest.mark.parametrize(
    "query",
    [
        b"",
        b"name[]=",
        b"name[]=%00",
        b"name[]=%FF%FE",
        b"name[]=%ED%A0%80",
        b"name[]=a&name[]=b",
        b"name[][]=1",
        b"name[]=\xff",
        b"name=1",
        b"%00=%00",
    ],
)
@pytest.mark.parametrize("service", sorted(APPS))
def test_the_exposition_takes_any_query(service: str, query: bytes) -> None:
    # What the document's missing 422 stands for: no name[] value is refused (no lifespan needed:
    # the exposition reads the process's registry).
    assert asyncio.run(_get_status(APPS[service](), "/metrics", query)) == 200


@pytest.mark.parametrize("body", [b"", b'{"a": "\\u0000"}', b"\x00"])
@pytest.mark.parametrize("query", [b"", b"probe=%00", b"%00"])
@pytest.mark.parametrize("service", sorted(APPS))
def test_probes_answer_whatever_the_probe_sends(service: str, query: bytes, body: bytes) -> None:
    # The router's app-wide refuse_nul had answered its probes 422 for a NUL in the query or body,
    # which they do not document: a probe gets the process's state. Without the lifespan nothing is
    # checked, so /readyz says unavailable.
    app = APPS[service]()
    assert asyncio.run(_get_status(app, "/healthz", query, body)) == 200
    assert asyncio.run(_get_status(app, "/readyz", query, body)) == 503


def test_the_router_still_refuses_a_nul_elsewhere() -> None:
    # The probes' exemption is theirs alone: an API operation's query still gets the 422 it declares.
    sent = asyncio.run(_get(router_app(RouterSettings()), "/v1/teams", b"limit=%00", b""))
    assert sent[0]["status"] == 422
    assert orjson.loads(sent[1]["body"])["errors"] == [{"field": "/query/limit", "message": NUL_MESSAGE}]


async def _get_status(app: FastAPI, path: str, query: bytes, body: bytes = b"") -> int:
    """The status ``app`` answers GET ``path`` with the raw ``query`` (bytes an HTTP client would
    escape or refuse included) and ``body``."""
    return int((await _get(app, path, query, body))[0]["status"])


async def _get(app: FastAPI, path: str, query: bytes, body: bytes) -> list[Message]:
    """What ``app`` sends for GET ``path`` with the raw ``query`` and ``body``."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return sent
