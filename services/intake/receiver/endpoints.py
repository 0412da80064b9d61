"""``POST /v1/webhooks/{name}``: verify over the raw bytes, adapt, deduplicate, publish durably.

Order of checks: unknown/disabled source 404, content type 415, size 413, signature 401 (before
any parsing), rate limit 429 (signed requests only), body 400/422, ignored event 202; then the
delivery is claimed and published (or parked in the outbox) by :meth:`EventPublisher.accept`.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from services.intake.deliveries import MAX_DELIVERY_ID
from services.intake.openapi import problems
from services.intake.publishable import refuse_unpublishable
from services.intake.publisher import EventPublisher, Unavailable
from services.intake.receiver.limits import TokenBuckets, read_body
from services.intake.sources.cache import SourceCache
from services.intake.webhooks import (
    AdaptedEvent,
    IgnoredEvent,
    SignatureError,
    UnmappableError,
    WebhookError,
    WebhookRequest,
    adapt,
    delivery_id,
    to_envelopes,
    verify_signature,
)
from shared.db.base import OUTSIDE_UTC_RANGE, convertible_to_utc
from shared.db.storable import NUL
from shared.events import external_id_too_long, utc_now
from shared.http.json_body import is_json_media_type
from shared.http.problems import Problem
from shared.http.raw_route import RawRoute, invalid

log = logging.getLogger(__name__)

# A raw route: FastAPI's per-request parameter solving and response wrapping cost ~100 µs of a
# webhook's CPU (measured), the busiest path of the service. It checks its one parameter itself.
router = APIRouter(prefix="/v1", tags=["webhooks"], route_class=RawRoute)
NAME_MAX = 100  # the sources.name column


class WebhookAccepted(BaseModel):
    delivery_id: str
    duplicate: bool
    ignored: bool = False
    delivery: Literal["published", "queued"] | None
    event_ids: list[str]
    ticket_keys: list[str]


_RAW_JSON_BODY: dict[str, Any] = {
    "parameters": [
        {
            "name": "name",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "maxLength": NAME_MAX},
            "description": "The source's name",
        }
    ],
    "requestBody": {
        "required": True,
        "description": "The vendor's webhook payload, verbatim: the signature covers these exact bytes.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}


def _bounded_delivery_id(raw: str) -> str:
    # Vendor ids come from headers the signature does not cover, or from the body: keep the
    # column's bound, and no U+0000 (PostgreSQL refuses it in text, with the whole ledger batch).
    if len(raw) <= MAX_DELIVERY_ID and NUL not in raw:
        return raw
    return "sha256id:" + hashlib.sha256(raw.encode()).hexdigest()


def _without_utc_instant(event: AdaptedEvent) -> str | None:
    """The field of ``event`` holding a time with no UTC instant (year 1 at +01:00, 9999 at -01:00),
    if any: the router could not store it, on any attempt, and the ticket would be dead-lettered."""
    for field, value in (
        ("/created_at", event.snapshot.created_at),
        ("/updated_at", event.snapshot.updated_at),
        ("/occurred_at", event.occurred_at),
    ):
        try:
            if value is not None:
                convertible_to_utc(value)
        except PydanticCustomError:
            return field
    return None


# A helpdesk admin pasting the URL with a trailing slash gets it delivered, not a 404 every time the
# helpdesk sends (the services answer no other path with a trailing slash: shared/http/slashes.py).
@router.post("/webhooks/{name}/", status_code=202, include_in_schema=False)
@router.post(
    "/webhooks/{name}",
    status_code=202,
    response_model=WebhookAccepted,
    responses={
        200: {"model": WebhookAccepted, "description": "A redelivery, acknowledged without publishing"},
        **problems(400, 401, 404, 413, 415, 422, 429, 503),
    },
    openapi_extra=_RAW_JSON_BODY,
    summary="Receive a webhook from a configured source (signed by the vendor)",
)
async def receive_webhook(request: Request) -> Response:
    name: str = request.path_params["name"]
    if len(name) > NAME_MAX:
        message = f"String should have at most {NAME_MAX} characters"
        raise invalid(("path", "name"), message, "string_too_long")
    state = request.app.state
    cache: SourceCache = state.source_cache
    # No source has U+0000 in its name (PostgreSQL would refuse the read itself: a 500).
    config = None if NUL in name else await cache.get(name)
    if config is None:
        raise Problem(404, "Not found", f"no enabled source named {name!r}")
    content_type = request.headers.get("content-type")
    if not is_json_media_type(content_type):
        # Named as the rest of the API names it (shared/http/json_body.py): the vendor's admin sees
        # which setting of the webhook to change (GitHub's default content type is a form).
        media = (content_type or "").split(";", 1)[0].strip()
        said = f"it says {media[:100]!r}" if media else "none given"
        message = f"send the payload with Content-Type: application/json ({said})"
        raise Problem(
            415,
            "Unsupported media type",
            message,
            errors=[{"field": "/header/content-type", "message": message}],
        )
    body = await read_body(request, state.settings.intake_max_body_bytes)
    scope = request.scope  # read directly: Starlette's Headers and QueryParams cost ~6 µs here
    webhook = WebhookRequest(
        headers={name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]},
        body=body,
        query=dict(request.query_params) if scope.get("query_string") else {},
    )
    now = utc_now()
    try:
        verify_signature(config, webhook, now)
    except SignatureError as exc:
        log.info("webhook signature rejected", extra={"source": config.name, "reason": exc.message})
        raise Problem(401, "Unauthorized", exc.message) from exc
    # Only signed requests count: unsigned ones, from anyone who knows the webhook's URL, must not
    # use up the source's budget and have the vendor's own deliveries refused.
    limits: TokenBuckets = state.rate_limits
    wait_s = limits.take(config.name)
    if wait_s:
        raise Problem(
            429,
            "Too many requests",
            f"rate limit of source {config.name!r} exceeded",
            headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
        )
    delivery = _bounded_delivery_id(delivery_id(config, webhook))
    try:
        events = adapt(config, webhook, now)
    except IgnoredEvent as exc:
        log.info("webhook ignored", extra={"source": config.name, "reason": exc.message})
        result = WebhookAccepted(
            delivery_id=delivery, duplicate=False, ignored=True, delivery=None, event_ids=[], ticket_keys=[]
        )
        return Response(result.model_dump_json(), status_code=202, media_type="application/json")
    except UnmappableError as exc:
        raise Problem(
            422, "Unmappable webhook", exc.message, errors=[{"field": exc.field, "message": exc.reason}]
        ) from exc
    except WebhookError as exc:
        raise Problem(exc.status_code, "Bad request", exc.message) from exc
    for event in events:
        no_instant = _without_utc_instant(event)
        if no_instant is not None:
            raise Problem(
                422,
                "Unmappable webhook",
                OUTSIDE_UTC_RANGE,
                errors=[{"field": no_instant, "message": OUTSIDE_UTC_RANGE}],
            )
        too_long = external_id_too_long(config.name, event.snapshot.external_id)
        if too_long is not None:
            raise Problem(
                422, "Unmappable webhook", too_long, errors=[{"field": "/external_id", "message": too_long}]
            )
    envelopes = to_envelopes(config, delivery, events)
    encoded = refuse_unpublishable(envelopes)
    publisher: EventPublisher = state.publisher
    try:
        outcome = await publisher.accept(envelopes, dedupe=(config.name, delivery), encoded=encoded)
    except Unavailable as exc:
        raise Problem(503, "Service unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    log.info(
        "webhook accepted",
        extra={
            "source": config.name,
            "delivery_id": delivery,
            "events": len(envelopes),
            "duplicate": outcome.duplicate,
        },
    )
    answer = {  # a WebhookAccepted, serialised directly
        "delivery_id": delivery,
        "duplicate": outcome.duplicate,
        "ignored": False,
        "delivery": outcome.delivery.value if outcome.delivery else None,
        "event_ids": [str(e.event_id) for e in envelopes],
        "ticket_keys": sorted({e.ticket_key for e in envelopes}),
    }
    status = 200 if outcome.duplicate else 202
    return Response(orjson.dumps(answer), status_code=status, media_type="application/json")
