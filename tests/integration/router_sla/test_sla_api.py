"""SLA policy/calendar admin API: versions with author and diff, validation, ETag concurrency
(the admin API's conventions: weak ``W/"sla-<kind>-<name>-<version>"`` ETags, If-Match lists,
428/412 problems naming the current ETag, the API key's name as author)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import delete

from services.router.sla.policy import MAX_POLICY_NAME
from services.router.slas import service
from services.router.slas.endpoints import router
from services.router.slas.models import SlaConfigVersion
from services.router.slas.service import load_config
from services.router.slas.tracking import compile_condition_set
from services.router.teams import service as teams
from services.router.teams.schemas import TeamCreate
from services.router.writeback.models import WritebackTarget
from shared.auth import Role
from shared.db.audit import list_entries
from shared.http.preconditions import Stale
from shared.http.problems import PROBLEM_JSON
from tests.integration.router_sla.helpers import api_client, new_id

CALENDAR = {"timezone": "UTC", "weekly_hours": {"mon-sun": ["00:00-24:00"]}}
# The database is shared with later tests: a policy a test saves must apply to none of their tickets.
NEVER = {"field": "customer_tier", "op": "equals", "value": "no tier has this name"}


async def client_for(sessions) -> httpx.AsyncClient:
    return await api_client(sessions, router, Role.EDITOR, "sla editor")


async def test_policy_lifecycle_with_validation_and_etags(sessions):
    cal, pol = f"cal-{new_id()[:8]}", f"pol-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        bad = await client.put(
            f"/v1/sla/calendars/{cal}",
            json={"document": {"timezone": "Mars/Olympus", "weekly_hours": {"mon-fri": "09:00-17:00"}}},
        )
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["errors"][0]["field"] == "/document/timezone"
        ok = await client.put(
            f"/v1/sla/calendars/{cal}",
            json={
                "document": {
                    "timezone": "Europe/Berlin",
                    "weekly_hours": {"mon-fri": "09:00-17:00"},
                    "holidays": ["2026-12-25"],
                }
            },
        )
        assert ok.status_code == 201 and ok.headers["etag"] == f'W/"sla-calendar-{cal}-1"'

        unknown_cal = await client.put(f"/v1/sla/policies/{pol}", json={"document": {"calendar": "nope"}})
        assert (
            unknown_cal.status_code == 422
            and unknown_cal.json()["errors"][0]["field"] == "/document/calendar"
        )
        bad_when = await client.put(
            f"/v1/sla/policies/{pol}",
            json={
                "document": {"calendar": cal, "applies_when": {"field": "nosuch", "op": "equals", "value": 1}}
            },
        )
        assert bad_when.status_code == 422
        assert bad_when.json()["errors"][0]["field"].startswith("/document/applies_when")

        doc = {
            "calendar": cal,
            "targets": {"P1": {"resolution": 240}},
            "applies_when": {"field": "customer_tier", "op": "equals", "value": "gold"},
        }
        created = await client.put(f"/v1/sla/policies/{pol}", json={"document": doc, "comment": "first"})
        v1 = f'W/"sla-policy-{pol}-1"'
        assert created.status_code == 201 and created.headers["etag"] == v1
        doc["targets"] = {"P1": {"resolution": 120}}
        missing = await client.put(f"/v1/sla/policies/{pol}", json={"document": doc})
        assert missing.status_code == 428 and missing.headers["etag"] == v1
        stale = await client.put(
            f"/v1/sla/policies/{pol}", json={"document": doc}, headers={"If-Match": f'W/"sla-policy-{pol}-7"'}
        )
        assert stale.status_code == 412 and stale.headers["etag"] == v1
        updated = await client.put(
            f"/v1/sla/policies/{pol}", json={"document": doc}, headers={"If-Match": v1}
        )
        assert updated.status_code == 200 and updated.headers["etag"] == f'W/"sla-policy-{pol}-2"'
        assert (await client.get(f"/v1/sla/policies/{pol}")).headers["etag"] == f'W/"sla-policy-{pol}-2"'

        history = (await client.get(f"/v1/sla/policies/{pol}/versions")).json()
        assert [v["version"] for v in history] == [2, 1]  # newest first
        # The key's name, as rule set versions and the audit log record it.
        assert [v["author"] for v in history] == ["sla editor", "sla editor"]
        assert "targets" in history[0]["diff"]
        in_use = await client.delete(
            f"/v1/sla/calendars/{cal}", headers={"If-Match": f'W/"sla-calendar-{cal}-1"'}
        )
        assert in_use.status_code == 409

    async with sessions() as session:
        config = await load_config(session)
        audited = await list_entries(session, entity="sla_policy", entity_id=pol)
    assert config.policy_named(pol) is not None and cal in config.calendars
    # Every change is in the audit log too, as the teams' and rule sets' are (newest first).
    assert [(e.action, e.actor, e.detail["version"]) for e in audited] == [
        ("sla_policy.update", "sla editor", 2),
        ("sla_policy.create", "sla editor", 1),
    ]
    assert audited[1].detail["comment"] == "first"


async def test_targets_are_finite_and_at_most_a_year(sessions):
    """1e13 minutes or Infinity overflowed timedelta (a 500); 1e11 was saved, and then every ticket
    routed under the policy failed its batch with OverflowError."""
    pol = f"pol-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        for value in (
            "1e13",
            "1e999",
            "Infinity",
            "-Infinity",
            "NaN",
            "1e11",
            "525601",
            "-1e13",
            "1" + "0" * 400,
        ):
            body = '{"document": {"targets": {"P1": {"first_response": 30, "resolution": ' + value + "}}}}"
            bad = await client.put(
                f"/v1/sla/policies/{pol}", content=body, headers={"Content-Type": "application/json"}
            )
            assert bad.status_code == 422, (value, bad.text)
            assert bad.headers["content-type"] == PROBLEM_JSON
            assert [e["field"] for e in bad.json()["errors"]] == ["/document/targets/P1/resolution"], value
        iso = await client.put(
            f"/v1/sla/policies/{pol}", json={"document": {"targets": {"P2": {"resolution": "P366D"}}}}
        )
        assert (
            iso.status_code == 422 and iso.json()["errors"][0]["field"] == "/document/targets/P2/resolution"
        )
        year = {"targets": {"P1": {"resolution": 525_600}}, "applies_when": NEVER}
        created = await client.put(f"/v1/sla/policies/{pol}", json={"document": year})
        assert created.status_code == 201, created.text
        deleted = await client.delete(
            f"/v1/sla/policies/{pol}", headers={"If-Match": created.headers["etag"]}
        )
        assert deleted.status_code == 204


async def test_a_stored_policy_that_newer_checks_refuse_is_left_out_not_fatal(sessions, caplog):
    """Saved by an earlier version (a two-year target): loading the configuration, which every
    router does at start, must not fail; the policy is skipped and the error logged."""
    pol = f"pol-{new_id()[:8]}"
    old = {"targets": {"P1": {"resolution": 2 * 525_600}}, "applies_when": NEVER}
    async with sessions() as session, session.begin():
        session.add(SlaConfigVersion(kind="policy", name=pol, version=1, document=old, author="v1"))
    try:
        async with sessions() as session:
            config = await load_config(session)
        assert config.policy_named(pol) is None
        assert any(getattr(r, "policy", None) == pol for r in caplog.records if r.levelname == "ERROR")
    finally:
        async with sessions() as session, session.begin():
            session.add(
                SlaConfigVersion(kind="policy", name=pol, version=2, document=old, deleted=True, author="t")
            )


async def test_a_stored_policy_whose_condition_no_longer_compiles_is_left_out_not_fatal(sessions, caplog):
    """Its document validated, so it was loaded, and compiling its applies_when (a field a newer
    rule engine no longer knows) then raised out of load_config: every router failed to start or
    reload. It is left out and logged, like any stored policy today's checks refuse."""
    pol = f"pol-{new_id()[:8]}"
    old = {"name": pol, "applies_when": {"field": "no_such_field_any_more", "op": "equals", "value": 1}}
    async with sessions() as session, session.begin():
        session.add(SlaConfigVersion(kind="policy", name=pol, version=1, document=old, author="v1"))
    try:
        async with sessions() as session:
            config = await load_config(session)
        assert config.policy_named(pol) is None and pol in config.left_out
        assert any(getattr(r, "policy", None) == pol for r in caplog.records if r.levelname == "ERROR")
    finally:
        async with sessions() as session, session.begin():
            session.add(
                SlaConfigVersion(kind="policy", name=pol, version=2, document=old, deleted=True, author="t")
            )


async def test_a_stored_policy_with_a_regex_saved_before_the_cost_bound_still_applies(sessions):
    """Saving refuses a regex over the RE2 program bound; a policy saved before that bound existed
    is read as saved (as a stored rule set is), not left out of every router."""
    pol = f"pol-{new_id()[:8]}"
    costly = r"(?:\w+\s*){1000}$"
    old: dict[str, Any] = {"name": pol, "applies_when": {"field": "text", "op": "matches", "value": costly}}
    async with sessions() as session, session.begin():
        session.add(SlaConfigVersion(kind="policy", name=pol, version=1, document=old, author="v1"))
    try:
        async with sessions() as session:
            config = await load_config(session)
        assert config.policy_named(pol) is not None and pol not in config.left_out
        with pytest.raises(ValidationError, match="too costly"):
            compile_condition_set(pol, old["applies_when"])  # what saving it today checks
    finally:
        async with sessions() as session, session.begin():
            session.add(
                SlaConfigVersion(kind="policy", name=pol, version=2, document=old, deleted=True, author="t")
            )


async def test_a_stored_calendar_that_no_longer_validates_is_left_out_not_fatal(sessions, caplog):
    """A calendar whose zone the system's time zone database no longer has (Debian moved US/Eastern
    and the like to tzdata-legacy), or one saved under looser checks: loading the configuration
    raised, so every router failed to start or reload. Now the calendar is skipped and logged, and
    the policies on it are left out (their clocks kept) until it is saved again."""
    cal, pol = f"cal-{new_id()[:8]}", f"pol-{new_id()[:8]}"
    calendar = {"name": cal, "timezone": "Mars/Olympus", "weekly_hours": {"mon": [["09:00", "17:00"]]}}
    policy = {"name": pol, "calendar": cal, "applies_when": NEVER}
    async with sessions() as session, session.begin():
        session.add(SlaConfigVersion(kind="calendar", name=cal, version=1, document=calendar, author="v1"))
        session.add(SlaConfigVersion(kind="policy", name=pol, version=1, document=policy, author="v1"))
    try:
        async with sessions() as session:
            config = await load_config(session)
        assert cal not in config.calendars
        assert config.policy_named(pol) is None and pol in config.left_out
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert any(getattr(r, "calendar", None) == cal for r in errors)
    finally:
        async with sessions() as session, session.begin():
            for kind, name, doc in (("policy", pol, policy), ("calendar", cal, calendar)):
                session.add(
                    SlaConfigVersion(kind=kind, name=name, version=2, document=doc, deleted=True, author="t")
                )


async def test_a_policy_cannot_be_saved_onto_a_calendar_that_no_longer_validates(sessions):
    """Such a policy was accepted (201) and then left out of every router's configuration, as the
    policies on that calendar are: saved, never applied, and nothing said so. Saving the calendar
    again brings it back, and its policies with it."""
    cal, pol = f"cal-{new_id()[:8]}", f"pol-{new_id()[:8]}"
    calendar = {"name": cal, "timezone": "Mars/Olympus", "weekly_hours": {"mon": [["09:00", "17:00"]]}}
    async with sessions() as session, session.begin():
        session.add(SlaConfigVersion(kind="calendar", name=cal, version=1, document=calendar, author="v1"))
    async with await client_for(sessions) as client:
        body = {"document": {"calendar": cal, "applies_when": NEVER}}
        refused = await client.put(f"/v1/sla/policies/{pol}", json=body)
        assert refused.status_code == 422 and fields_of(refused) == ["/document/calendar"]
        fixed = await client.put(
            f"/v1/sla/calendars/{cal}",
            json={"document": {**calendar, "timezone": "Europe/Berlin"}},
            headers={"If-Match": f'W/"sla-calendar-{cal}-1"'},
        )
        assert fixed.status_code == 200, fixed.text
        created = await client.put(f"/v1/sla/policies/{pol}", json=body)
        assert created.status_code == 201, created.text
        async with sessions() as session:
            config = await load_config(session)
        assert cal in config.calendars and config.policy_named(pol) is not None
        await client.delete(f"/v1/sla/policies/{pol}", headers={"If-Match": created.headers["etag"]})
        await client.delete(f"/v1/sla/calendars/{cal}", headers={"If-Match": fixed.headers["etag"]})


async def test_reassign_to_names_an_active_team(sessions):
    """Unchecked, a policy could name a team that does not exist (or one longer than the teams
    column, which on PostgreSQL rolled back every escalation scan)."""
    active, inactive = f"esc-{new_id()[:8]}", f"esc-{new_id()[:8]}"
    async with sessions() as session, session.begin():
        await teams.create_team(session, TeamCreate(name=active), "test")
        await teams.create_team(session, TeamCreate(name=inactive, active=False), "test")
    pol = f"pol-{new_id()[:8]}"

    def policy(*names: str) -> dict[str, Any]:
        on_breach = [{"action": "raise_priority"}, *({"action": "reassign_to", "team": n} for n in names)]
        return {"document": {"applies_when": NEVER, "on_warning": on_breach[1:], "on_breach": on_breach}}

    async with await client_for(sessions) as client:
        bad = await client.put(f"/v1/sla/policies/{pol}", json=policy(active, "no-such-team", inactive))
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM_JSON
        assert {e["field"]: e["message"] for e in bad.json()["errors"]} == {
            "/document/on_warning/1/team": "unknown team 'no-such-team'",
            "/document/on_warning/2/team": f"inactive team {inactive!r}",
            "/document/on_breach/2/team": "unknown team 'no-such-team'",
            "/document/on_breach/3/team": f"inactive team {inactive!r}",
        }
        too_long = await client.put(f"/v1/sla/policies/{pol}", json=policy("t" * 101))
        assert too_long.status_code == 422
        assert [e["field"] for e in too_long.json()["errors"]][:1] == ["/document/on_warning/0/team"]
        created = await client.put(f"/v1/sla/policies/{pol}", json=policy(active))
        assert created.status_code == 201, created.text
        deleted = await client.delete(
            f"/v1/sla/policies/{pol}", headers={"If-Match": created.headers["etag"]}
        )
        assert deleted.status_code == 204


async def test_a_writer_that_committed_after_our_read_makes_our_save_fail(sessions):
    """Both admins read version 1 and passed If-Match; the second save must not land as version 3."""
    cal = f"cal-{new_id()[:8]}"

    def stored(holidays: list[str]) -> dict[str, Any]:
        # What the API stores (validated, with its name): the database is shared with later tests,
        # whose router would refuse to start on a calendar it cannot read.
        raw = {"timezone": "Europe/Berlin", "weekly_hours": {"mon-fri": ["09:00-17:00"]}}
        raw["holidays"] = holidays
        return service.validate_document("calendar", cal, raw, service.LiveCalendars({}), {}).model_dump(
            mode="json"
        )

    async with sessions() as session, session.begin():
        await service.save(session, "calendar", cal, stored([]), "setup", previous=None)
    async with sessions() as slow:
        await slow.begin()
        seen = await service.latest(slow, "calendar", cal)
        async with sessions() as fast, fast.begin():
            await service.save(fast, "calendar", cal, stored(["2026-12-24"]), "fast", previous=seen)
        with pytest.raises(Stale) as lost:
            await service.save(slow, "calendar", cal, stored(["2026-12-31"]), "slow", previous=seen)
        assert lost.value.current_etag == f'W/"sla-calendar-{cal}-2"'
        await slow.rollback()
    async with sessions() as session:
        rows = await service.history(session, "calendar", cal)
    assert [(r.version, r.author) for r in rows] == [(1, "setup"), (2, "fast")]


async def test_concurrent_puts_with_one_etag_save_one_version(sessions):
    pol_calendar = f"cal-{new_id()[:8]}"
    document = {"timezone": "UTC", "weekly_hours": {"mon-sun": ["00:00-24:00"]}}
    async with await client_for(sessions) as client:
        created = await client.put(f"/v1/sla/calendars/{pol_calendar}", json={"document": document})
        assert created.status_code == 201
        responses = await asyncio.gather(
            *(
                client.put(
                    f"/v1/sla/calendars/{pol_calendar}",
                    json={"document": {**document, "holidays": [f"2026-12-{day}"]}},
                    headers={"If-Match": created.headers["etag"]},
                )
                for day in (24, 25, 26, 31)
            )
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 412, 412, 412], [r.text for r in responses]
        # The losers are told the winner's ETag, as for rule sets.
        winner = f'W/"sla-calendar-{pol_calendar}-2"'
        assert {r.headers["etag"] for r in responses} == {winner}
        history = (await client.get(f"/v1/sla/calendars/{pol_calendar}/versions")).json()
    assert [v["version"] for v in history] == [2, 1]


async def test_if_match_forms_and_problems_follow_the_admin_api(sessions):
    """Lists, weak/strong and ``*`` as for teams and rule sets; 428/412 name the current ETag."""
    cal = f"cal-{new_id()[:8]}"
    url = f"/v1/sla/calendars/{cal}"

    def tag(version: int, weak: bool = True) -> str:
        return f'{"W/" if weak else ""}"sla-calendar-{cal}-{version}"'

    def put(holidays: list[str], if_match: str | None = None) -> Any:
        headers = {"If-Match": if_match} if if_match is not None else {}
        return client.put(url, json={"document": {**CALENDAR, "holidays": holidays}}, headers=headers)

    async with await client_for(sessions) as client:
        never = await put([], if_match=tag(1))
        assert never.status_code == 412 and never.headers["content-type"] == PROBLEM_JSON
        assert (await put([])).status_code == 201

        listed = await put(["2026-12-24"], if_match=f'W/"sla-calendar-other-1", {tag(1)}')
        assert listed.status_code == 200 and listed.headers["etag"] == tag(2)
        strong = await put(["2026-12-25"], if_match=tag(2, weak=False))
        assert strong.status_code == 200 and strong.headers["etag"] == tag(3)
        assert (await put(["2026-12-26"], if_match="*")).headers["etag"] == tag(4)

        for answer, status in [
            (await put([]), 428),
            (await put([], if_match='"4"'), 412),  # the old, unprefixed form names no SLA version
            (await put([], if_match=f"{tag(2)}, {tag(3, weak=False)}"), 412),
            (await put([], if_match=f"*, {tag(4)}"), 412),  # '*' inside a list: malformed
            (await put([], if_match=f"{tag(4)} {tag(4)}"), 412),  # no comma between the tags
            (await client.delete(url), 428),
            (await client.delete(url, headers={"If-Match": tag(3)}), 412),
        ]:
            assert answer.status_code == status, answer.text
            assert answer.headers["content-type"] == PROBLEM_JSON
            assert answer.headers["etag"] == tag(4) and tag(4) in answer.json()["detail"]

        # Several If-Match lines are one list; only the later tag is current, and it holds.
        lines = [("If-Match", tag(3)), ("If-Match", tag(4, weak=False))]
        assert (await client.delete(url, headers=lines)).status_code == 204
        assert (await client.delete(url, headers={"If-Match": tag(4)})).status_code == 404
        # A deleted one is absent: an ETag from before the deletion cannot (re)create it.
        assert (await put([], if_match=tag(4))).status_code == 412
        assert (await put([], if_match=f"*, {tag(4)}")).status_code == 412  # not '*': malformed
        again = await put([], if_match="*")
        assert again.status_code == 201 and again.headers["etag"] == tag(6)
        history = (await client.get(f"{url}/versions")).json()[::-1]  # oldest first
    assert [(v["version"], v["deleted"], v["author"]) for v in history] == [
        (1, False, "sla editor"),
        (2, False, "sla editor"),
        (3, False, "sla editor"),
        (4, False, "sla editor"),
        (5, True, "sla editor"),
        (6, False, "sla editor"),
    ]
    async with sessions() as session:
        audited = await list_entries(session, entity="sla_calendar", entity_id=cal)
    assert [(e.action, e.detail["version"]) for e in reversed(audited)] == [
        ("sla_calendar.create", 1),
        *[("sla_calendar.update", version) for version in (2, 3, 4)],
        ("sla_calendar.delete", 5),
        ("sla_calendar.create", 6),
    ]


async def test_names_that_are_not_header_safe_still_make_valid_etags(sessions):
    cal = f"Office hours, EU {new_id()[:6]} \u00e9t\u00e9"
    async with await client_for(sessions) as client:
        created = await client.put(f"/v1/sla/calendars/{cal}", json={"document": CALENDAR})
        assert created.status_code == 201
        encoded = service.etag_prefix("calendar", cal)
        assert created.headers["etag"] == f'W/"{encoded}-1"' and encoded.isascii()
        assert not {" ", ",", '"'} & set(encoded)
        updated = await client.put(
            f"/v1/sla/calendars/{cal}",
            json={"document": CALENDAR},
            headers={"If-Match": created.headers["etag"]},
        )
        assert updated.status_code == 200, updated.text


def test_openapi_documents_etags_and_preconditions() -> None:
    app = FastAPI()
    app.include_router(router)
    paths = app.openapi()["paths"]
    one = paths["/v1/sla/{plural}/{name}"]
    assert "ETag" in one["get"]["responses"]["200"]["headers"]
    assert {"200", "201"} <= set(one["put"]["responses"])
    for code in ("200", "201"):
        assert "ETag" in one["put"]["responses"][code]["headers"]
    for method in ("put", "delete"):
        responses = one[method]["responses"]
        assert {"412", "428"} <= set(responses)
        assert PROBLEM_JSON in responses["412"]["content"]
        assert any(p["name"] == "If-Match" for p in one[method]["parameters"])


def fields_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM_JSON, response.text
    return [e["field"] for e in response.json()["errors"]]


async def test_a_calendar_cannot_take_the_built_in_always_open_name(sessions):
    """A calendar named 24x7 silently replaced the always-open calendar of every policy without one."""
    hours = {"timezone": "UTC", "weekly_hours": {"mon-fri": "09:00-10:00"}}
    async with await client_for(sessions) as client:
        assert fields_of(await client.put("/v1/sla/calendars/24x7", json={"document": hours})) == [
            "/path/name"
        ]
        named = await client.put("/v1/sla/calendars/24x7", json={"document": {**hours, "name": "24x7"}})
        assert fields_of(named) == ["/document/name"]
        assert "always-open" in named.json()["errors"][0]["message"]
        assert (await client.get("/v1/sla/calendars/24x7")).status_code == 404
    async with sessions() as session:
        config = await load_config(session)
    assert config.calendar("24x7").is_open(datetime(2026, 1, 10, 12, tzinfo=UTC))  # a Saturday noon


async def test_notify_names_a_write_back_target(sessions):
    """As a reassign_to names a team: an unknown target was accepted, and notified nobody."""
    target, pol = f"hook-{new_id()[:8]}", f"pol-{new_id()[:8]}"
    async with sessions() as session, session.begin():
        session.add(
            WritebackTarget(
                name=target, source="api", url="https://hooks.invalid/x", secret="s", event_kinds=[]
            )
        )

    def policy(*targets: str) -> dict[str, Any]:
        notify = [{"action": "notify", "target": t} for t in targets]
        return {"document": {"applies_when": NEVER, "on_breach": [{"action": "raise_priority"}, *notify]}}

    try:
        async with await client_for(sessions) as client:
            bad = await client.put(f"/v1/sla/policies/{pol}", json=policy(target, "no-such-target"))
            assert fields_of(bad) == ["/document/on_breach/2/target"]
            assert bad.json()["errors"][0]["message"] == "unknown write-back target 'no-such-target'"
            created = await client.put(f"/v1/sla/policies/{pol}", json=policy(target))
            assert created.status_code == 201, created.text
            deleted = await client.delete(
                f"/v1/sla/policies/{pol}", headers={"If-Match": created.headers["etag"]}
            )
            assert deleted.status_code == 204
    finally:
        async with sessions() as session, session.begin():
            await session.execute(delete(WritebackTarget).where(WritebackTarget.name == target))


async def test_a_new_name_cannot_look_like_another(sessions):
    """ "café" composed and decomposed, or "gold" and "gold" with an invisible character (a zero
    width space, a right-to-left override), would be two policies no one can tell apart, and a rule
    naming what it sees refused as unknown: a new name is NFC and holds no control or format
    character (422 naming /path/name)."""
    base = f"gold-{new_id()[:8]}"
    composed_name = f"caf\u00e9-{base}"
    document = {"document": {"applies_when": NEVER}}
    async with await client_for(sessions) as client:
        for plural in ("policies", "calendars"):
            body = document if plural == "policies" else {"document": CALENDAR}
            for name in (f"cafe\u0301-{base}", f"{base}\u200b", f"\u202e{base}", f"{base}\x07x"):
                refused = await client.put(f"/v1/sla/{plural}/{quote(name)}", json=body)
                assert fields_of(refused) == ["/path/name"], (name, refused.text)
            url = f"/v1/sla/{plural}/{quote(composed_name)}"
            composed = await client.put(url, json=body)
            assert composed.status_code == 201, composed.text
            await client.delete(url, headers={"If-Match": composed.headers["etag"]})


async def test_new_names_are_trimmed_and_short_enough_for_rules_yet_stored_ones_still_load(sessions):
    """ "gold" and "gold " were two policies, and a policy name of 101 to 200 characters could be
    saved but named by no rule. Names stored before these checks still load and can be saved again."""
    base = f"gold-{new_id()[:8]}"
    document = {"document": {"applies_when": NEVER}}
    async with await client_for(sessions) as client:
        for plural in ("policies", "calendars"):
            body = document if plural == "policies" else {"document": CALENDAR}
            for name in (f"{base}%20", f"%20{base}", f"{base}%0A"):
                assert fields_of(await client.put(f"/v1/sla/{plural}/{name}", json=body)) == ["/path/name"]
        longest = "p" * MAX_POLICY_NAME
        assert fields_of(await client.put(f"/v1/sla/policies/{longest}x", json=document)) == ["/path/name"]
        created = await client.put(f"/v1/sla/policies/{longest}", json=document)
        assert created.status_code == 201, created.text
        await client.delete(f"/v1/sla/policies/{longest}", headers={"If-Match": created.headers["etag"]})

    stored = {"policy": [f"{base} ", "q" * 150], "calendar": [f" {base}"]}
    async with sessions() as session, session.begin():
        for kind, names in stored.items():
            for name in names:
                doc = {"name": name, **(CALENDAR if kind == "calendar" else {"applies_when": NEVER})}
                session.add(SlaConfigVersion(kind=kind, name=name, version=1, document=doc, author="v1"))
    async with sessions() as session:
        config = await load_config(session)
    assert all(config.policy_named(name) is not None for name in stored["policy"])
    assert f" {base}" in config.calendars
    async with await client_for(sessions) as client:
        for kind, names in stored.items():
            plural = "policies" if kind == "policy" else "calendars"
            for name in names:
                url = f"/v1/sla/{plural}/{quote(name)}"
                tag = {"If-Match": f'W/"{service.etag_prefix(kind, name)}-1"'}
                body = {"document": CALENDAR} if kind == "calendar" else document
                saved = await client.put(url, json=body, headers=tag)
                assert saved.status_code == 200, saved.text
                deleted = await client.delete(url, headers={"If-Match": saved.headers["etag"]})
                assert deleted.status_code == 204, deleted.text


async def test_a_time_zone_of_many_path_segments_is_a_422_naming_it(sessions):
    """ZoneInfo imports ``tzdata.zoneinfo.<segments>`` one package per segment, so a "zone" of a
    few hundred ``a/`` segments raised RecursionError out of the validator: a 500, not a 422."""
    zone = "a/" * 2_000 + "b"
    async with await client_for(sessions) as client:
        response = await client.put(
            f"/v1/sla/calendars/cal-{new_id()[:8]}",
            json={"document": {"timezone": zone, "weekly_hours": {"mon-fri": "09:00-17:00"}}},
        )
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM_JSON
    assert fields_of(response) == ["/document/timezone"]


async def test_a_blank_tag_is_refused_naming_it(sessions):
    """add_tag " " was saved, and at a breach tagged the ticket with nothing: a ticket.escalated
    event (and its write-back) that changed nothing."""
    document = {
        "applies_when": NEVER,
        "on_breach": [{"action": "raise_priority"}, {"action": "add_tag", "tag": " "}],
    }
    async with await client_for(sessions) as client:
        response = await client.put(f"/v1/sla/policies/pol-{new_id()[:8]}", json={"document": document})
    assert response.status_code == 422 and fields_of(response) == ["/document/on_breach/1/tag"]


async def test_calendar_errors_name_the_fields_of_the_document_sent(sessions):
    """Day ranges and shorthands are expanded before validation, so one bad interval under
    "mon-fri" was five errors naming /weekly_hours/mon/0 .. /fri/0, none of them in the document;
    a bad holiday given as a date named /holidays/0/day, a string has no "day"."""

    async def fields(document: dict[str, Any]) -> list[str]:
        async with await client_for(sessions) as client:
            response = await client.put(f"/v1/sla/calendars/cal-{new_id()[:8]}", json={"document": document})
        assert response.status_code == 422 and response.headers["content-type"] == PROBLEM_JSON
        return fields_of(response)

    assert await fields({"weekly_hours": {"mon-fri": "17:00-09:00"}}) == ["/document/weekly_hours/mon-fri"]
    assert await fields(
        {"weekly_hours": {"sat": "10:00-12:00", "mon-fri": ["09:00-12:00", "13:00-25:00"]}}
    ) == ["/document/weekly_hours/mon-fri/1"]
    assert await fields({"weekly_hours": {"daily": {"start": "09:00"}}}) == [
        "/document/weekly_hours/daily/end"
    ]
    assert await fields({"weekly_hours": {"mon": [["09:00", "17:00"], ["18:00", "x"]]}}) == [
        "/document/weekly_hours/mon/1"
    ]
    assert await fields(
        {"weekly_hours": {"mon": "09:00-17:00"}, "holidays": ["2026-12-25", "2026-02-30"]}
    ) == ["/document/holidays/1"]
    assert await fields(
        {"weekly_hours": {"mon": "09:00-17:00"}, "holidays": [{"day": "2026-02-30", "name": "x"}]}
    ) == ["/document/holidays/0/day"]


async def test_an_unknown_priority_in_targets_names_its_key(sessions):
    """A bad key of ``targets`` was named /document/targets/p1/[key]: pydantic's marker for a key,
    which is no JSON pointer into the document."""
    document = {"applies_when": NEVER, "targets": {"p1": {"resolution": 60}}}
    async with await client_for(sessions) as client:
        response = await client.put(f"/v1/sla/policies/pol-{new_id()[:8]}", json={"document": document})
    assert response.status_code == 422 and fields_of(response) == ["/document/targets/p1"]


async def test_history_is_paged_newest_first_with_a_next_link(sessions):
    """``/versions`` pages as the rule set's versions and the audit log do: newest first,
    ``limit`` a page, ``before`` the cursor, and a full page's ``Link`` names the next one."""
    cal = f"cal-{new_id()[:8]}"
    url = f"/v1/sla/calendars/{cal}"
    async with await client_for(sessions) as client:
        assert (await client.put(url, json={"document": CALENDAR})).status_code == 201
        for version in range(1, 5):
            saved = await client.put(
                url,
                json={"document": {**CALENDAR, "holidays": [f"2026-12-{version:02d}"]}},
                headers={"If-Match": f'W/"sla-calendar-{cal}-{version}"'},
            )
            assert saved.status_code == 200, saved.text
        first = await client.get(f"{url}/versions", params={"limit": 2})
        assert first.status_code == 200
        assert [v["version"] for v in first.json()] == [5, 4]
        assert first.headers["link"] == f'<{url}/versions?limit=2&before=4>; rel="next"'
        second = await client.get(f"{url}/versions", params={"limit": 2, "before": 4})
        assert [v["version"] for v in second.json()] == [3, 2]
        last = await client.get(f"{url}/versions", params={"limit": 2, "before": 2})
        assert [v["version"] for v in last.json()] == [1] and "link" not in last.headers
        everything = await client.get(f"{url}/versions")
        assert [v["version"] for v in everything.json()] == [5, 4, 3, 2, 1]
        too_many = await client.get(f"{url}/versions", params={"limit": 1001})
        assert too_many.status_code == 422
        assert too_many.json()["errors"][0]["field"] == "/query/limit"
        # A cursor below the first version is an empty page, not a 404: the history exists.
        empty = await client.get(f"{url}/versions", params={"before": 1})
        assert empty.status_code == 200 and empty.json() == []
        missing = await client.get(f"/v1/sla/calendars/{cal}-none/versions")
        assert missing.status_code == 404
