"""Request and response bodies of the API-keys API. No body ever carries a key's hash; only the
creation response carries the key itself, once."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Role


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=200, pattern=r"^\S(.*\S)?$", description="Who or what uses the key."
    )
    role: Role = Field(Role.VIEWER, description="admin, editor, viewer or intake.")


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself: shown in this response only, never stored.")
