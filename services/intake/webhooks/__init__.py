"""Webhook intake, the pure part: verify a source's signature, derive a delivery id, and adapt the
vendor payload into contract ticket events. No I/O; the HTTP endpoint calls, in order::

    verify_signature(config, request, now)      # SignatureError -> 401
    key = delivery_id(config, request)          # dedupe redeliveries on this
    events = adapt(config, request)             # MalformedBodyError 400, UnmappableError 422,
                                                # IgnoredEvent 202 (publish nothing)
    for envelope in to_envelopes(config, key, events): publish(envelope)

Every error subclasses :class:`WebhookError` and carries ``status_code``.
"""

from .dispatch import ADAPTERS, adapt, to_envelopes
from .errors import IgnoredEvent, MalformedBodyError, SignatureError, UnmappableError, WebhookError
from .generic import validate_generic_mapping
from .models import AdaptedEvent, AdapterName, SourceConfig, WebhookRequest
from .signatures import delivery_id, verify_signature

__all__ = [
    "ADAPTERS",
    "AdaptedEvent",
    "AdapterName",
    "IgnoredEvent",
    "MalformedBodyError",
    "SignatureError",
    "SourceConfig",
    "UnmappableError",
    "WebhookError",
    "WebhookRequest",
    "adapt",
    "delivery_id",
    "to_envelopes",
    "validate_generic_mapping",
    "verify_signature",
]
