"""What the pipeline can carry: an event is refused at intake, naming the field at fault, rather
than acknowledged and then stuck.

A record the producer refuses as too large would sit at the head of the outbox for good, and every
later event behind it (the relay keeps a ticket's order, and the outbox is shared). JSON nested
deeper than the consumers' decoder reads (200 levels, pydantic-core) would be dead-lettered by
the router, and deeper still cannot be encoded at all. Only ``custom_fields`` is free-form; every
other field of a ticket has a bounded shape.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.events import EventEnvelope
from shared.http.problems import Problem

# Under the producer's and the broker's default limit (1 MiB: max.request.size, message.max.bytes),
# with room for the record's key and headers. A description at its 200,000 characters in a script
# of three UTF-8 bytes a character (Japanese, Chinese) is ~600 kB as an event: it fits. A dead-letter
# copy that no longer fits goes without its value (shared/kafka/consumer.py).
MAX_EVENT_BYTES = 960 * 1024
MAX_CUSTOM_FIELDS_DEPTH = 32


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers in ``value`` nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _largest_field(payload: dict[str, Any]) -> str:
    sizes = {name: len(orjson.dumps(value)) for name, value in payload.items()}
    return max(sizes, key=sizes.__getitem__)


def refusal(envelope: EventEnvelope, value: bytes) -> Problem | None:
    """Why ``envelope`` (whose bytes are ``value``) cannot be published (None when it can), as the
    problem to answer."""
    custom_fields = envelope.payload.get("custom_fields")
    if custom_fields and _deeper_than(custom_fields, MAX_CUSTOM_FIELDS_DEPTH):
        message = f"nested more than {MAX_CUSTOM_FIELDS_DEPTH} levels deep"
        return Problem(
            422,
            "Invalid ticket",
            f"/custom_fields: {message}",
            errors=[{"field": "/custom_fields", "message": message}],
        )
    size = len(value)
    if size <= MAX_EVENT_BYTES:
        return None
    field = "/" + _largest_field(envelope.payload)
    message = (
        f"the ticket is {size:,} bytes as an event, over the limit of {MAX_EVENT_BYTES:,}; "
        f"this is its largest field"
    )
    return Problem(
        413, "Content too large", f"{field}: {message}", errors=[{"field": field, "message": message}]
    )


def refuse_unpublishable(envelopes: list[EventEnvelope]) -> list[bytes]:
    """Each envelope's bytes, for ``EventPublisher.accept`` (encoded once per request); raises the
    :func:`refusal` of the first envelope that has one."""
    values = [envelope.to_bytes() for envelope in envelopes]
    for envelope, value in zip(envelopes, values, strict=True):
        problem = refusal(envelope, value)
        if problem is not None:
            raise problem
    return values
