"""Errors raised while verifying or adapting a webhook.

Each carries the HTTP status the endpoint should answer with, so the endpoint can map them with one
``except WebhookError`` clause. Messages never contain request bodies or secrets: they end up in HTTP
responses to the sender and in logs.
"""

from __future__ import annotations


class WebhookError(Exception):
    status_code: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignatureError(WebhookError):
    """The request is not provably from the configured source (bad, stale or missing signature)."""

    status_code = 401


class MalformedBodyError(WebhookError):
    """The body is not a JSON object at all."""

    status_code = 400


class UnmappableError(WebhookError):
    """The body is JSON but cannot be turned into a ticket; ``field`` points at the culprit."""

    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class IgnoredEvent(WebhookError):
    """A genuine delivery that carries no ticket change (ping, pull request comment, ...)."""

    status_code = 202
