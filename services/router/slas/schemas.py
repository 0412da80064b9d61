"""Request/response bodies of the SLA admin API; the documents themselves are the pure models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.router.sla import SlaPolicy
from shared.http.json_types import JsonInt

KINDS = ("policy", "calendar")


class StoredPolicy(SlaPolicy):
    """An SLA policy as stored: ``rank`` orders selection (lowest first, then name)."""

    rank: JsonInt = Field(default=100, ge=0, le=1_000_000)


class ConfigOut(BaseModel):
    kind: str
    name: str
    version: int
    document: dict[str, Any]
    author: str
    comment: str
    created_at: datetime


class VersionOut(ConfigOut):
    deleted: bool
    diff: str


class WriteIn(BaseModel):
    """Body of PUT: the document plus an optional change comment."""

    document: dict[str, Any]
    comment: str = Field(default="", max_length=2_000)
