"""Authenticity checks and delivery ids, per vendor, over the raw body bytes.

All secret comparisons go through :func:`hmac.compare_digest`, and every configured secret is tried
(two during a rotation), so a signature under either the old or the new secret passes.

Schemes (see each vendor's webhook docs):

* GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>``.
* Zendesk: ``X-Zendesk-Webhook-Signature: base64(HMAC-SHA256(timestamp + body))`` with the timestamp
  from ``X-Zendesk-Webhook-Signature-Timestamp``; timestamps further than ``options["timestamp_tolerance"]``
  seconds (default 300) from ``now``, in either direction, are rejected to stop replays.
* Jira (admin webhooks with a secret, WebSub style): ``X-Hub-Signature: sha256=<hex>``.
* Intercom and Zammad: ``X-Hub-Signature: sha1=<hex HMAC-SHA1(body)>``.
* Freshdesk, generic and native: no vendor signature exists, so the sender is configured to send the
  secret itself, either in a header (``options["auth_header"]``, default ``X-Webhook-Secret``) or as the
  password of HTTP Basic auth.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson

from .errors import SignatureError
from .models import SourceConfig, WebhookRequest

DEFAULT_AUTH_HEADER = "X-Webhook-Secret"
DEFAULT_ZENDESK_TOLERANCE_SECONDS = 300
MAX_ZENDESK_TOLERANCE_SECONDS = 3600  # beyond an hour the replay window protects little

log = logging.getLogger(__name__)


def zendesk_tolerance(options: Mapping[str, Any]) -> float:
    """``options["timestamp_tolerance"]`` in seconds; ValueError unless a number from 1 to
    :data:`MAX_ZENDESK_TOLERANCE_SECONDS`."""
    value = options.get("timestamp_tolerance", DEFAULT_ZENDESK_TOLERANCE_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("timestamp_tolerance: expected a number of seconds")
    if not 1 <= value <= MAX_ZENDESK_TOLERANCE_SECONDS:  # also refuses NaN and infinity
        raise ValueError(f"timestamp_tolerance: expected 1 to {MAX_ZENDESK_TOLERANCE_SECONDS} seconds")
    return float(value)


def _as_sent(header_value: str) -> bytes:
    """A header's bytes as sent: the server decodes header bytes as latin-1, so a secret with
    non-ASCII characters arrives as its UTF-8 bytes read one character per byte."""
    try:
        return header_value.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire (built by hand): take it as text
        return header_value.encode("utf-8", "surrogateescape")


def _matches_any(candidates: list[bytes], presented: str | bytes) -> bool:
    given = (
        presented.strip()
        if isinstance(presented, bytes)
        else presented.strip().encode("utf-8", "surrogateescape")
    )
    # No short-circuit: the time taken does not reveal which secret matched.
    results = [hmac.compare_digest(candidate, given) for candidate in candidates]
    return any(results)


def _required_header(request: WebhookRequest, name: str) -> str:
    value = request.header(name)
    if not value:
        raise SignatureError(f"missing {name} header")
    return value


def _verify_hub(config: SourceConfig, request: WebhookRequest, header: str, algorithm: str) -> None:
    presented = _required_header(request, header)
    expected = [
        f"{algorithm}={hmac.new(s.encode(), request.body, algorithm).hexdigest()}".encode()
        for s in config.secrets
    ]
    # Hex digests are case-insensitive; senders use lower case but tolerate upper.
    scheme, _, hexdigest = presented.strip().partition("=")
    if not _matches_any(expected, f"{scheme.lower()}={hexdigest.lower()}"):
        raise SignatureError(f"{header} does not match")


def _verify_zendesk(config: SourceConfig, request: WebhookRequest, now: datetime) -> None:
    presented = _required_header(request, "X-Zendesk-Webhook-Signature")
    timestamp = _required_header(request, "X-Zendesk-Webhook-Signature-Timestamp")
    try:
        signed_at = datetime.fromisoformat(timestamp.strip())
    except ValueError as exc:
        raise SignatureError("unparseable X-Zendesk-Webhook-Signature-Timestamp") from exc
    if signed_at.tzinfo is None or now.tzinfo is None:
        raise SignatureError("X-Zendesk-Webhook-Signature-Timestamp must carry a timezone")
    try:
        tolerance = timedelta(seconds=zendesk_tolerance(config.options))
    except ValueError as exc:  # stored before sources were checked: the sender is not at fault
        log.warning(
            "invalid source option, using the default", extra={"source": config.name, "error": str(exc)}
        )
        tolerance = timedelta(seconds=DEFAULT_ZENDESK_TOLERANCE_SECONDS)
    if abs(now - signed_at) > tolerance:
        raise SignatureError("signature timestamp outside the allowed window")
    message = timestamp.encode() + request.body
    expected = [
        base64.b64encode(hmac.new(s.encode(), message, hashlib.sha256).digest()) for s in config.secrets
    ]
    if not _matches_any(expected, presented):
        raise SignatureError("X-Zendesk-Webhook-Signature does not match")


def _basic_password(authorization: str) -> str | None:
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep else None


def _verify_shared_secret(config: SourceConfig, request: WebhookRequest) -> None:
    header = str(config.options.get("auth_header") or DEFAULT_AUTH_HEADER)
    secrets = [s.encode() for s in config.secrets]
    presented = request.header(header)
    if presented is not None and _matches_any(secrets, _as_sent(presented)):
        return
    authorization = request.header("Authorization")
    password = _basic_password(authorization) if authorization else None
    if password is not None and _matches_any(secrets, password):
        return
    if presented is None and password is None:
        raise SignatureError(f"missing {header} header or Basic credentials")
    raise SignatureError("shared secret does not match")


def verify_signature(config: SourceConfig, request: WebhookRequest, now: datetime) -> None:
    """Raise :class:`SignatureError` unless ``request`` is authentic for ``config``. ``now`` must be
    timezone-aware (it bounds Zendesk's signature timestamp)."""
    match config.adapter:
        case "github":
            _verify_hub(config, request, "X-Hub-Signature-256", "sha256")
        case "jira":
            _verify_hub(config, request, "X-Hub-Signature", "sha256")
        case "intercom" | "zammad":
            _verify_hub(config, request, "X-Hub-Signature", "sha1")
        case "zendesk":
            _verify_zendesk(config, request, now)
        case "freshdesk" | "generic" | "native":
            _verify_shared_secret(config, request)


def _body_hash(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _body_field(body: bytes, key: str) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value) or None


def delivery_id(config: SourceConfig, request: WebhookRequest) -> str:
    """A key that is the same for every redelivery of one notification, for deduplication.

    The vendor's delivery id where it has one (prefixed by the adapter, so ids of different vendors
    cannot collide), otherwise ``sha256:`` + the hex digest of the raw body. Never raises.
    """
    vendor: str | None = None
    match config.adapter:
        case "github":
            vendor = request.header("X-GitHub-Delivery")
        case "jira":
            vendor = request.header("X-Atlassian-Webhook-Identifier")
        case "zammad":
            vendor = request.header("X-Zammad-Delivery")
        case "intercom":
            vendor = _body_field(request.body, "id")
        case "zendesk":
            # X-Zendesk-Webhook-Id names the webhook, not the delivery: pair it with the event id
            # (event subscriptions) or the invocation id; trigger payloads fall back to the body hash.
            webhook = request.header("X-Zendesk-Webhook-Id")
            kind = _body_field(request.body, "type") or ""
            event = _body_field(request.body, "id") if kind.startswith("zen:") else None
            event = event or request.header("X-Zendesk-Webhook-Invocation-Id")
            if webhook and event:
                vendor = f"{webhook}:{event}"
        case "generic" | "native":
            header = config.options.get("delivery_header")
            vendor = request.header(str(header)) if header else None
        case "freshdesk":
            vendor = None
    if vendor and vendor.strip():
        return f"{config.adapter}:{vendor.strip()}"
    return _body_hash(request.body)
