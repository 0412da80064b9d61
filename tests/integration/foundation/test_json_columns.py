"""JSON columns round-trip through the engine's orjson serializer on both databases."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import Source
from shared.db.engine import json_text

DOCUMENT: dict[str, Any] = {
    "text": "Systemausfall – größte Störung \u2028 ✓",
    "numbers": [0, -1, 2**63 - 1, 0.1 + 0.2, 1e-7, True, None],
    "nested": {"list": [{"a": "b"}], "empty": {}},
}


def test_json_text_reads_back_as_json_dumps_would_and_handles_what_orjson_refuses():
    assert json.loads(json_text(DOCUMENT)) == json.loads(json.dumps(DOCUMENT))
    assert json.loads(json_text({1: "x", 2.5: "y"})) == {"1": "x", "2.5": "y"}
    huge = {"id": 2**70}  # beyond orjson's 64-bit integers: json.dumps writes it
    assert json.loads(json_text(huge)) == huge


async def test_documents_come_back_unchanged(sessions: async_sessionmaker[AsyncSession]):
    options = {**DOCUMENT, "huge": 2**70}
    async with sessions() as session, session.begin():
        session.add(Source(name="json-roundtrip", adapter="generic", secrets=["é"], options=options))
    async with sessions() as session:
        stored = await session.get(Source, "json-roundtrip")
        assert stored is not None
        assert stored.secrets == ["é"]
        assert stored.options == options
