"""Conditional GET on an intake source: If-None-Match with its current ETag -> 304, no body."""

from __future__ import annotations

import uuid

from tests.integration.intake.helpers import Intake


async def test_a_source_read_again_is_not_modified(intake: Intake) -> None:
    name = f"zd-{uuid.uuid4().hex[:8]}"
    assert (await intake.add_source(name, "zendesk", "conditional-secret-1")).status_code == 201
    one = await intake.client.get(f"/v1/sources/{name}", headers=intake.admin)
    assert one.status_code == 200
    tag = one.headers["ETag"]
    same = await intake.client.get(f"/v1/sources/{name}", headers={**intake.admin, "If-None-Match": tag})
    assert same.status_code == 304 and same.content == b"" and same.headers["ETag"] == tag
    other = await intake.client.get(
        f"/v1/sources/{name}", headers={**intake.admin, "If-None-Match": f'{tag[:-1]}0"'}
    )
    assert other.status_code == 200 and other.json() == one.json()
