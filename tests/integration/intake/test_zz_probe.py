from __future__ import annotations

from tests.integration.intake.helpers import Intake


async def test_probe(intake: Intake) -> None:
    c = intake.client
    for body in (
        {"external_id": "t1", "created_at": "0001-01-01T00:00:00+01:00"},
        {"external_id": "t2", "updated_at": "9999-12-31T23:59:59-01:00"},
        {"external_id": "t3", "source": ".."},
        {"external_id": "t4", "requester": {"email": "x" * 5000}},
        {"external_id": "t5", "tags": ["x" * 100000]},
    ):
        r = await c.post("/v1/tickets", json=body, headers=intake.intake)
        print(body["external_id"], r.status_code, r.text[:300])
    for name in ("x" * 100, "a b", "%00", "..", "a%2Fb"):
        r = await c.post(f"/v1/webhooks/{name}", content=b"{}", headers={"content-type": "application/json"})
        print(name[:10], r.status_code, r.text[:200])
    r = await c.post("/v1/sources", headers=intake.admin, json={"name": "p1", "type": "generic", "secret": "whsec-0123456789", "options": {"mapping": {"external_id": "/id"}, "auth_header": "Authorization"}})
    print("src", r.status_code, r.text[:300])
