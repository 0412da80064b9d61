"""Sparse business calendars and long targets: refused on save, harmless when stored before.

A target (at most a year of business time) on a calendar with one open hour a week needs 168
years of calendar time, on one open minute a week 10,000 years (past datetime's range): every
routing batch of a ticket under such a policy walked that far for each deadline, or failed with
OverflowError. Saving refuses what does not end within ten years (the README's horizon); a policy
stored before is still applied (loading does not re-check the horizon, whose open time depends on
the weekday it starts), and its deadlines, like those of clocks already running on one, are
capped at the horizon.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from services.router.models import RouterTicket
from services.router.sla import BusinessCalendar
from services.router.slas.endpoints import router
from services.router.slas.models import SlaConfigVersion
from services.router.slas.schemas import StoredPolicy
from services.router.slas.service import load_config
from services.router.slas.tracking import SlaConfig
from services.ticketctl import sla as sla_cli
from services.ticketctl.main import app
from shared.auth import Role
from shared.events import utc_now
from shared.http.problems import PROBLEM_JSON
from tests.integration.router_sla.helpers import (
    Clock,
    api_client,
    event,
    new_id,
    producer_for,
    sla_handler,
    utc,
)

HORIZON = timedelta(days=3653)
YEAR_MINUTES = 525_600
# The database is shared with later tests: a policy a test saves must apply to none of their tickets.
NEVER = {"field": "customer_tier", "op": "equals", "value": "no tier has this name"}
HOUR_A_WEEK = {"timezone": "Europe/Berlin", "weekly_hours": {"mon": "09:00-10:00"}}


async def client_for(sessions) -> httpx.AsyncClient:
    return await api_client(sessions, router, Role.EDITOR, "sla editor")


def mondays(first: date, count: int) -> list[str]:
    first += timedelta(days=-first.weekday() % 7)
    return [(first + timedelta(weeks=i)).isoformat() for i in range(count)]


def fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text[:500]
    assert response.headers["content-type"] == PROBLEM_JSON
    return sorted(e["field"] for e in response.json()["errors"])


async def test_targets_must_end_within_ten_years_of_their_calendar(sessions):
    cal, pol = f"cal-{new_id()[:8]}", f"pol-{new_id()[:8]}"
    office, office_pol = f"cal-{new_id()[:8]}", f"pol-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        made = await client.put(f"/v1/sla/calendars/{cal}", json={"document": HOUR_A_WEEK})
        assert made.status_code == 201, made.text
        targets = {
            "P1": {"first_response": 60, "resolution": YEAR_MINUTES},  # 8,760 weeks
            "P2": {"resolution": 30_000},  # 500 h: ~9.6 years
            "P3": {"first_response": 100_000},  # 1,667 h: 32 years
        }
        document = {"calendar": cal, "targets": targets, "applies_when": NEVER}
        bad = await client.put(f"/v1/sla/policies/{pol}", json={"document": document})
        assert fields(bad) == ["/document/targets/P1/resolution", "/document/targets/P3/first_response"]
        message = next(e["message"] for e in bad.json()["errors"] if e["field"].endswith("P1/resolution"))
        assert "10 years" in message and cal in message

        document["targets"] = {"P1": {"first_response": 60}, "P2": {"resolution": 30_000}}
        ok = await client.put(f"/v1/sla/policies/{pol}", json={"document": document})
        assert ok.status_code == 201, ok.text

        # The calendar cannot become too sparse for the policies on it either: fewer hours ...
        etag = made.headers["etag"]
        half = {**HOUR_A_WEEK, "weekly_hours": {"mon": "09:00-09:30"}}
        narrowed = await client.put(
            f"/v1/sla/calendars/{cal}", json={"document": half}, headers={"If-Match": etag}
        )
        assert fields(narrowed) == ["/document/weekly_hours"]
        assert pol in narrowed.json()["errors"][0]["message"]
        # ... or holidays on most of its Mondays (the hours alone would do).
        closed = {**HOUR_A_WEEK, "holidays": mondays(utc_now().date(), 150)}
        holidays = await client.put(
            f"/v1/sla/calendars/{cal}", json={"document": closed}, headers={"If-Match": etag}
        )
        assert fields(holidays) == ["/document/holidays"]
        assert pol in holidays.json()["errors"][0]["message"]
        a_few = {**HOUR_A_WEEK, "holidays": mondays(utc_now().date(), 3)}
        fine = await client.put(
            f"/v1/sla/calendars/{cal}", json={"document": a_few}, headers={"If-Match": etag}
        )
        assert fine.status_code == 200, fine.text

        # A year on office hours (40 h a week) is 4.2 years: allowed, as on 24x7.
        hours = {
            "timezone": "Europe/Berlin",
            "weekly_hours": {"mon-fri": "09:00-17:00"},
            "holidays": ["2027-01-01"],
        }
        assert (await client.put(f"/v1/sla/calendars/{office}", json={"document": hours})).status_code == 201
        year = {"calendar": office, "targets": {"P1": {"resolution": YEAR_MINUTES}}, "applies_when": NEVER}
        office_ok = await client.put(f"/v1/sla/policies/{office_pol}", json={"document": year})
        assert office_ok.status_code == 201, office_ok.text

        for kind, name, response in (("policies", pol, ok), ("policies", office_pol, office_ok)):
            gone = await client.delete(
                f"/v1/sla/{kind}/{name}", headers={"If-Match": response.headers["etag"]}
            )
            assert gone.status_code == 204
        for name in (cal, office):
            current = (await client.get(f"/v1/sla/calendars/{name}")).headers["etag"]
            assert (
                await client.delete(f"/v1/sla/calendars/{name}", headers={"If-Match": current})
            ).status_code == 204


async def test_a_calendar_without_open_time_in_ten_years_is_refused(sessions):
    cal = f"cal-{new_id()[:8]}"
    # Open on Mondays only, every one of them a holiday for over ten years (fewer than the 1,000
    # holidays a calendar may have), from the week before today.
    every_monday = mondays(utc_now().date() - timedelta(days=7), 540)
    document = {"timezone": "UTC", "weekly_hours": {"mon": "09:00-17:00"}, "holidays": every_monday}
    async with await client_for(sessions) as client:
        closed = await client.put(f"/v1/sla/calendars/{cal}", json={"document": document})
        assert fields(closed) == ["/document/holidays"]
        assert "no open time" in closed.json()["errors"][0]["message"]
        # Ten open Mondays (80 h) in the horizon make a calendar, just not for longer targets.
        document["holidays"] = every_monday[:100] + every_monday[110:]
        made = await client.put(f"/v1/sla/calendars/{cal}", json={"document": document})
        assert made.status_code == 201, made.text
        targets = {"P4": {"first_response": 60, "resolution": 10 * 8 * 60}}  # all 80 h: fine
        pol = f"pol-{new_id()[:8]}"
        policy = {"calendar": cal, "targets": targets, "applies_when": NEVER}
        created = await client.put(f"/v1/sla/policies/{pol}", json={"document": policy})
        assert created.status_code == 201, created.text
        policy["targets"] = {"P4": {"resolution": 10 * 8 * 60 + 1}}
        longer = await client.put(
            f"/v1/sla/policies/{pol}",
            json={"document": policy},
            headers={"If-Match": created.headers["etag"]},
        )
        assert fields(longer) == ["/document/targets/P4/resolution"]
        assert (
            await client.delete(f"/v1/sla/policies/{pol}", headers={"If-Match": created.headers["etag"]})
        ).status_code == 204
        assert (
            await client.delete(f"/v1/sla/calendars/{cal}", headers={"If-Match": made.headers["etag"]})
        ).status_code == 204


async def test_a_stored_policy_too_long_for_its_calendar_is_still_applied(sessions, caplog):
    """Stored before this check: the routers keep applying it (with capped deadlines). Re-checking
    on load would make a policy saved just within the horizon flicker in and out of the routers
    with the weekday they reload on, and a ticket would lose its clock."""
    cal, pol = f"cal-{new_id()[:8]}", f"pol-{new_id()[:8]}"
    minute = {"name": cal, "timezone": "UTC", "weekly_hours": {"mon": ["09:00-09:01"]}, "holidays": []}
    old = {
        "name": pol,
        "calendar": cal,
        "targets": {"P1": {"resolution": YEAR_MINUTES}},
        "applies_when": NEVER,
    }
    async with sessions() as session, session.begin():
        session.add(SlaConfigVersion(kind="calendar", name=cal, version=1, document=minute, author="v1"))
        session.add(SlaConfigVersion(kind="policy", name=pol, version=1, document=old, author="v1"))
    try:
        async with sessions() as session:
            config = await load_config(session)
        assert config.policy_named(pol) is not None
        assert cal in config.calendars
        assert not [r for r in caplog.records if getattr(r, "policy", None) == pol]
        async with await client_for(sessions) as client:
            # Saving it again names the field; the calendar it was already too long for stays editable.
            again = await client.put(
                f"/v1/sla/policies/{pol}",
                json={"document": old},
                headers={"If-Match": f'W/"sla-policy-{pol}-1"'},
            )
            assert fields(again) == ["/document/targets/P1/resolution"]
            edited = await client.put(
                f"/v1/sla/calendars/{cal}",
                json={"document": {**minute, "holidays": ["2027-12-27"]}},
                headers={"If-Match": f'W/"sla-calendar-{cal}-1"'},
            )
            assert edited.status_code == 200, edited.text
    finally:
        async with sessions() as session, session.begin():
            session.add(
                SlaConfigVersion(kind="policy", name=pol, version=2, document=old, deleted=True, author="t")
            )
            session.add(
                SlaConfigVersion(
                    kind="calendar", name=cal, version=3, document=minute, deleted=True, author="t"
                )
            )


async def test_a_batch_under_a_policy_stored_before_the_check_routes_with_capped_deadlines(
    sessions, settings_kwargs
):
    """The routers run clocks on policies already stored (and on targets stored in the clocks):
    each deadline of such a ticket walked 10,000 years and failed the batch with OverflowError."""
    policy = StoredPolicy(
        name="stored-before-the-check",
        calendar="minute",
        targets={p: {"first_response": 60, "resolution": YEAR_MINUTES} for p in ("P1", "P2", "P3", "P4")},
    )
    minute = BusinessCalendar(name="minute", timezone="UTC", weekly_hours={"mon": "09:00-09:01"})
    cfg = SlaConfig(policies=[policy], calendars={"minute": minute})
    start = utc(2026, 6, 8, 7, 0)  # a Monday, before its open minute
    async with producer_for(settings_kwargs) as (producer, topic):
        handler = sla_handler(sessions, producer, topic, Clock(start), cfg)
        ext = new_id()
        await handler([event(ext, start)])
    async with sessions() as session:
        row = await session.get(RouterTicket, f"api:{ext}")
    assert row is not None and row.sla["policy"] == "stored-before-the-check"
    assert datetime.fromisoformat(row.sla["resolution_due"]) == start + HORIZON
    # 60 open minutes are 60 Mondays: exact, within the horizon.
    assert datetime.fromisoformat(row.sla["first_response_due"]) == utc(2026, 6, 8, 9, 1) + timedelta(
        weeks=59
    )


def test_ticketctl_apply_refuses_a_target_too_long_for_the_calendar(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(sla_cli.console, "width", 250)
    cli, cal, pol = CliRunner(), f"cal-{uuid.uuid4().hex[:8]}", f"pol-{uuid.uuid4().hex[:8]}"
    calendar_file, policy_file = tmp_path / "calendar.yaml", tmp_path / "policy.yaml"
    calendar_file.write_text(yaml.safe_dump({"name": cal, **HOUR_A_WEEK}))
    made = cli.invoke(app, ["sla", "apply", "calendar", str(calendar_file)])
    assert made.exit_code == 0, made.output
    policy: dict[str, Any] = {
        "name": pol,
        "calendar": cal,
        "targets": {"P2": {"resolution": YEAR_MINUTES}},
        "applies_when": NEVER,
    }
    policy_file.write_text(yaml.safe_dump(policy))
    refused = cli.invoke(app, ["sla", "apply", "policy", str(policy_file)])
    assert refused.exit_code == 1 and "/targets/P2/resolution" in refused.output, refused.output
    shown = cli.invoke(app, ["sla", "show", "policy", pol])
    assert shown.exit_code == 1  # nothing was saved
