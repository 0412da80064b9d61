"""Every number and boolean a request body of the router's or the intake's admin API takes is a
JSON one (``shared.http.json_types``): a field added later with a bare ``int``, ``float`` or
``bool`` would take ``true`` for 1 or ``"yes"`` for true again, as pydantic's lax mode does."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, Strict

from services.intake.app import create_app as intake_app
from services.intake.webhooks.models import SourceConfig
from services.router.app import create_app as router_app
from services.router.slas.service import MODELS
from services.router.writeback.connectors import CONNECTORS
from shared.http.json_types import refuse_bool

# Checked otherwise, or not ours to change here.
EXEMPT = {
    "services.router.rules.schema.Actions.set_urgency",  # its own parser refuses a boolean
    "services.router.rules.schema.Actions.set_impact",
    "services.router.rules.schema.RuleSet.version",  # set by the storage layer, never read from a body
}
# The event schema (a simulated ticket) is shared with the webhook adapters, whose vendors' values
# it takes as they come.
EXEMPT_MODULES = ("shared.events",)


def routes(app: FastAPI) -> Iterator[APIRoute]:
    stack: list[Any] = list(app.routes)
    while stack:
        route = stack.pop()
        if hasattr(route, "original_router"):  # FastAPI's included router
            stack.extend(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


def loose(annotation: Any, metadata: list[Any], where: str, seen: set[type]) -> Iterator[str]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *more = typing.get_args(annotation)
        yield from loose(base, [*metadata, *more], where, seen)
        return
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from model_loose(annotation, seen)
        return
    if annotation in (int, float):
        if not any(isinstance(m, BeforeValidator) and m.func is refuse_bool for m in metadata):
            yield where
        return
    if annotation is bool:
        if not any(isinstance(m, Strict) and m.strict for m in metadata):
            yield where
        return
    before = [m for m in metadata if isinstance(m, BeforeValidator) and m.func is refuse_bool]
    for argument in typing.get_args(annotation):
        # A union wrapped whole (a group id: a name or a number) is covered by its wrapper.
        yield from loose(argument, before if argument in (int, float) else [], where, seen)


def model_loose(model: type[BaseModel], seen: set[type]) -> Iterator[str]:
    if model in seen or model.__module__.startswith(EXEMPT_MODULES):
        return
    seen.add(model)
    for name, field in model.model_fields.items():
        where = f"{model.__module__}.{model.__qualname__}.{name}"
        if where not in EXEMPT:
            yield from loose(field.annotation, list(field.metadata), where, seen)


def test_request_bodies_take_only_json_numbers_and_booleans() -> None:
    seen: set[type] = set()
    found: list[str] = []
    for app in (router_app(), intake_app()):
        for route in routes(app):
            if route.body_field is not None:
                found.extend(loose(route.body_field.field_info.annotation, [], route.path, seen))
    # Validated from a body's free-form part: SLA documents, connector and source options.
    free_form: list[type[BaseModel]] = [*MODELS.values(), *CONNECTORS.values(), SourceConfig]
    for model in free_form:
        found.extend(model_loose(model, seen))
    assert not found, f"use shared.http.json_types for: {sorted(set(found))}"
