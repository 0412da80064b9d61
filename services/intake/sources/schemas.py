"""Request and response bodies of the sources admin API. Responses never carry secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from services.intake.webhooks import AdapterName
from shared.db.storable import reject_nul
from shared.http.json_types import JsonBool

SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
Secret = Field(
    min_length=8,
    max_length=500,
    # No NUL, and no white space at either end: a shared secret is compared as a header carries it,
    # trimmed, so a stored " secret" would never match.
    pattern=r"^[^\x00\s](?:[^\x00]*[^\x00\s])?$",
    description="Shared secret or HMAC key (never returned); no white space at either end.",
)


class _ChecksOptions(BaseModel):
    @field_validator("options", check_fields=False)
    @classmethod
    def _storable(cls, options: dict[str, Any] | None) -> dict[str, Any] | None:
        reject_nul(options)
        return options


class SourceCreate(_ChecksOptions):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=SOURCE_NAME)
    type: AdapterName = Field(description="The adapter: which vendor's webhooks this source sends.")
    secret: str = Secret
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter configuration.")
    enabled: JsonBool = True


class SourceUpdate(_ChecksOptions):
    model_config = ConfigDict(extra="forbid")

    options: dict[str, Any] | None = Field(default=None, description="Replaces the adapter configuration.")
    enabled: JsonBool | None = None


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str = Secret


class SourceOut(BaseModel):
    name: str
    type: str
    enabled: bool
    options: dict[str, Any]
    secret_count: int = Field(description="1, or 2 during a rotation.")
    secret_fingerprints: list[str] = Field(
        description="sha256 prefixes, oldest first, to tell secrets apart."
    )
    revision: int = Field(
        description='Bumped by every change; the ETag is W/"source-<name>-<revision>.<generation>", '
        "the generation drawn when the source is created (no ETag of a deleted source matches a "
        "source created after it under the same name)."
    )
    created_at: datetime
    updated_at: datetime
    webhook_path: str
    # For the ETag only (not in the body).
    _generation: str = PrivateAttr(default="")
