"""The generic connector: the notification as JSON, POSTed to the target's URL and signed.

Receivers check ``X-Ticket-Router-Signature: sha256=<HMAC-SHA256 of the raw body>`` with the
shared secret. To refuse replays, they check ``X-Ticket-Router-Timestamp-Signature:
sha256=<HMAC-SHA256 of "<timestamp>.<raw body>">`` instead and reject stale
``X-Ticket-Router-Timestamp`` values: the body's signature alone holds for any timestamp.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import BaseModel, ConfigDict

from services.router.writeback.connectors.common import USER_AGENT, OutboundRequest, Target

SIGNATURE_HEADER = "X-Ticket-Router-Signature"
TIMESTAMP_HEADER = "X-Ticket-Router-Timestamp"
TIMESTAMPED_SIGNATURE_HEADER = "X-Ticket-Router-Timestamp-Signature"


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a webhook has none


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def render(body: bytes, target: Target, now: float) -> OutboundRequest:
    """``body`` as queued, byte for byte: the signature covers exactly what is sent."""
    timestamp = str(int(now))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(target.secret, body),
        TIMESTAMP_HEADER: timestamp,
        TIMESTAMPED_SIGNATURE_HEADER: sign(target.secret, timestamp.encode() + b"." + body),
    }
    return OutboundRequest("POST", target.url, headers, body)
