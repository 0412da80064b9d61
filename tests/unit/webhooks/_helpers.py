"""Shared test helpers: fixture loading and reference signers written from the vendors' docs."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.intake.webhooks import AdaptedEvent, SourceConfig, WebhookRequest, adapt

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "webhooks"
SHARED_GITHUB = REPO.parent / "shared" / "webhooks" / "github"
NOW = datetime(2024, 4, 17, 17, 18, 30, tzinfo=UTC)
SECRET = "s3cr3t-current"
NEXT_SECRET = "s3cr3t-next"


def fixture(vendor: str, name: str) -> bytes:
    return (FIXTURES / vendor / name).read_bytes()


def github_sample(name: str) -> bytes:
    path = SHARED_GITHUB / name
    if not path.is_file():
        pytest.skip(f"shared GitHub sample {name} not available")
    return path.read_bytes()


def config(adapter: Any, secrets: list[str] | None = None, **options: Any) -> SourceConfig:
    return SourceConfig(name=f"test-{adapter}", adapter=adapter, secrets=secrets or [SECRET], options=options)


def hub(body: bytes, secret: str, algorithm: str) -> str:
    return f"{algorithm}={hmac.new(secret.encode(), body, algorithm).hexdigest()}"


def zendesk_signature(body: bytes, secret: str, timestamp: str) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    ).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def adapt_one(cfg: SourceConfig, body: bytes, headers: dict[str, str] | None = None) -> AdaptedEvent:
    events = adapt(cfg, WebhookRequest(headers=headers or {}, body=body), NOW)
    assert len(events) == 1
    return events[0]
