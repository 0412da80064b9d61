"""``POST /v1/tickets``: our own JSON ticket format, authenticated with an intake API key.

The hot path of the service, so the handler is a :class:`RawRoute` taking the raw request: auth,
header and body are checked here (same rules, same 401/403/422 problem+json as the declarative
form) instead of by FastAPI's per-request dependency solving, and the answer is serialised with
orjson. The OpenAPI operation is declared by hand from the same :class:`TicketIn` model.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.intake.openapi import problems
from services.intake.publishable import refuse_unpublishable
from services.intake.publisher import EventPublisher, KeyReused, Unavailable
from services.intake.receiver.limits import read_body
from services.intake.sources.cache import SourceCache
from services.intake.tickets.schemas import Accepted, TicketIn
from shared.auth import Role, authenticate
from shared.events import EventType, derived_event_id, external_id_too_long, ticket_event
from shared.http.json_body import is_json_media_type, without_utf8_bom
from shared.http.nul_guard import body_unstorable, nul_problem
from shared.http.openapi import problem_responses
from shared.http.problems import Problem
from shared.http.query_params import refuse_unknown_query
from shared.http.raw_route import RawRoute, invalid

router = APIRouter(prefix="/v1", tags=["tickets"], route_class=RawRoute)

# What an Idempotency-Key was recorded under (webhook_deliveries.delivery_id) before keys were
# scoped per API key: such a record still answers its request's retry (see submit_ticket).
IDEMPOTENCY_PREFIX = "idempotency:"
SCOPED_IDEMPOTENCY_PREFIX = "idempotency/"  # not a prefix of the above: no record reads as the other
IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,150}")


def idempotency_delivery_id(api_key_id: str, key: str) -> str:
    """The delivery id an Idempotency-Key is recorded under: scoped per API key, as at Stripe, so
    two clients that happen to choose the same key are two requests, not a reuse (422) or a
    duplicate (never published). At most 12 + 36 (the key's id) + 1 + 150 characters: the column
    holds 200."""
    return f"{SCOPED_IDEMPOTENCY_PREFIX}{api_key_id}/{key}"


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """The model's JSON schema with its ``$defs`` inlined (the operation must be self-contained)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline_refs(value, defs) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(value, defs) for value in node]
    return node


def _openapi() -> dict[str, Any]:
    schema = TicketIn.model_json_schema()
    return {
        "parameters": [
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 150, "pattern": r"^[\x21-\x7e]+$"},
                "description": (
                    "Retries with the same key (from the same API key: keys are scoped per API "
                    "key) are acknowledged once and published once. A key reused with a different "
                    "ticket is refused (422)."
                ),
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_refs(schema, schema.get("$defs", {}))}},
        },
    }


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise invalid(
            ("header", IDEMPOTENCY_HEADER),
            "must be 1 to 150 printable ASCII characters without spaces",
            "string_pattern_mismatch",
        )
    return key


async def _ticket(request: Request) -> TicketIn:
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_media_type(content_type):
        raise invalid(("body",), "send the ticket as application/json", "model_attributes_type")
    body = await read_body(request, request.app.state.settings.intake_max_body_bytes)
    # A UTF-8 byte order mark before the JSON (a file saved by Notepad, Windows PowerShell's
    # Out-File) is skipped, as RFC 8259 allows and webhooks do; it was a 400, every time.
    body = without_utf8_bom(body)
    unstorable = body_unstorable(body)  # PostgreSQL stores no U+0000: the router could not keep it
    if unstorable is not None:
        raise nul_problem(*unstorable)
    try:
        ticket = TicketIn.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from exc
    too_long = external_id_too_long(ticket.source, ticket.external_id)
    if too_long is not None:
        raise invalid(("body", "external_id"), too_long, "string_too_long")
    # A configured webhook source's tickets come through its webhook, signed with its secret: an
    # intake key posting under its name could forge or overwrite them (and their write-backs). A
    # deleted source's tickets are still in the router, written back to its helpdesk: its name is
    # refused alike.
    sources: SourceCache = request.app.state.source_cache
    reserved = await sources.reserved(ticket.source)
    if reserved == "configured":
        message = (
            f"{ticket.source!r} is a configured webhook source: its tickets come only through "
            f"POST /v1/webhooks/{ticket.source}, signed with its secret"
        )
        raise invalid(("body", "source"), message, "source_reserved")
    if reserved == "retired":
        message = (
            f"{ticket.source!r} belonged to a webhook source, since deleted: its tickets are still "
            "the router's, written back to that source's helpdesk; post under another name"
        )
        raise invalid(("body", "source"), message, "source_reserved")
    return ticket


_BAD_REQUEST = {
    400: "Malformed body, or a query parameter: the operation takes none (errors name /query/<name>)"
}


# Fields whose value said at its default changes what the request does: ``"status": "new"`` reopens
# a ticket, ``"tags": []`` clears them; left out, the ticket keeps its own.
_SAID_AT_DEFAULT = ("status", "tags")


def _digest(ticket: TicketIn) -> str:
    """The request as parsed, so a retry that only re-serialises the JSON (spacing, key order) still
    matches the first use of its key. A request that leaves out a field and one that says it at its
    default differ (see :data:`_SAID_AT_DEFAULT`); a request that says none of them has the digest
    it had before this was told apart, so a key claimed then still matches its retries."""
    document = ticket.model_dump(mode="json")
    said = [
        name
        for name in _SAID_AT_DEFAULT
        if name in ticket.model_fields_set
        and getattr(ticket, name) == TicketIn.model_fields[name].get_default(call_default_factory=True)
    ]
    if said:
        document["$said_at_default"] = said
    canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


@router.post(
    "/tickets",
    status_code=202,
    response_model=Accepted,
    responses={
        200: {"model": Accepted, "description": "Same Idempotency-Key seen before: nothing published"},
        **problems(401, 403, 413, 422, 503),
        **problem_responses(_BAD_REQUEST, (400,)),
    },
    openapi_extra=_openapi(),
    summary="Submit a ticket (create, update, solve or reopen by external_id)",
)
async def submit_ticket(request: Request) -> Response:
    # Called here: a raw route solves no dependencies. First, as the routers' dependency runs.
    await refuse_unknown_query(request)
    caller = await authenticate(request, Role.INTAKE)
    idempotency_key = _idempotency_key(request)
    ticket = await _ticket(request)
    event_type = EventType.TICKET_CREATED if ticket.status == "new" else EventType.TICKET_STATUS_CHANGED
    dedupe = (
        (ticket.source, idempotency_delivery_id(caller.key_id, idempotency_key)) if idempotency_key else None
    )
    # Recorded before keys were scoped (kept INTAKE_DELIVERY_RETENTION_DAYS): a retry of that
    # request is still its duplicate, but another request is not refused for it (whose it was is
    # not known).
    unscoped = IDEMPOTENCY_PREFIX + idempotency_key if idempotency_key else None
    digest = _digest(ticket) if dedupe else None
    # With a key, the event id derives from it and the request, so even a republished retry is one
    # event downstream, and a key reused with another ticket once the ledger has pruned it (then no
    # longer refused) is a new event, not one the router, which keeps event ids longer, would skip.
    event_id = derived_event_id(dedupe[0], dedupe[1], digest) if dedupe and digest else None
    envelope = ticket_event(event_type, ticket.source, ticket.snapshot(), event_id=event_id)
    encoded = refuse_unpublishable([envelope])
    publisher: EventPublisher = request.app.state.publisher
    try:
        outcome = await publisher.accept(
            [envelope], dedupe=dedupe, request_digest=digest, unscoped=unscoped, encoded=encoded
        )
    except KeyReused as exc:
        raise invalid(
            ("header", IDEMPOTENCY_HEADER),
            "this key was already used with a different ticket; use a new key for a new request",
            "idempotency_key_reused",
        ) from exc
    except Unavailable as exc:
        raise Problem(503, "Service unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    body = {
        "event_id": str(envelope.event_id),
        "ticket_key": envelope.ticket_key,
        "delivery": outcome.delivery.value if outcome.delivery else None,
        "duplicate": outcome.duplicate,
    }
    return Response(
        orjson.dumps(body), status_code=200 if outcome.duplicate else 202, media_type="application/json"
    )
