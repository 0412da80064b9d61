"""Dry runs: simulate one ticket with a trace; replay stored tickets through a draft."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.router.models import RouterTicket
from tests.integration.router_api.helpers import Router, rule


async def test_simulate_traces_every_rule(router_api: Router) -> None:
    network, desk = await router_api.add_team("net"), await router_api.add_team("desk")
    fast = f"fast-{uuid.uuid4().hex[:8]}"  # rules may name only an existing policy
    never = {"field": "customer_tier", "op": "equals", "value": "no tier has this name"}
    policy = await router_api.client.put(
        f"/v1/sla/policies/{fast}", json={"document": {"applies_when": never}}, headers=router_api.editor
    )
    assert policy.status_code == 201, policy.text
    saved = await router_api.put_rules(
        {
            "default_team": desk,
            "rules": [
                {
                    "id": "vip",
                    "name": "VIP",
                    "when": {"field": "customer_tier", "op": "equals", "value": "gold"},
                    "actions": {"set_priority": "P1", "add_tags": ["vip"], "stop": False},
                },
                {"id": "night", "name": "Night shift", "enabled": False, "actions": {"assign_team": desk}},
                rule("vpn", network, "vpn", actions={"assign_team": network, "sla_policy": fast}),
            ],
        }
    )
    assert saved.status_code == 200, saved.text
    ticket = {"external_id": "s-1", "subject": "VPN is down", "requester": {"customer_tier": "silver"}}
    response = await router_api.client.post(
        "/v1/routing/simulate", json={"ticket": ticket, "source": "zendesk"}, headers=router_api.viewer
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ruleset_version"] == saved.json()["version"] and body["draft"] is False
    decision = body["decision"]
    assert decision["team"] == network and decision["rule_id"] == "vpn" and decision["sla_policy"] == fast
    assert decision["priority"] is None and decision["tags"] == []
    trace = body["trace"]
    assert [(s["rule_id"], s["matched"]) for s in trace] == [("vip", False), ("vpn", True)]
    failure = trace[0]["failure"]
    assert failure["field"] == "customer_tier" and failure["actual"] == "'silver'"
    assert "gold" in failure["reason"] and trace[1]["stopped"] is True

    gold = {**ticket, "requester": {"customer_tier": "gold"}, "subject": "printer"}
    body = (
        await router_api.client.post("/v1/routing/simulate", json={"ticket": gold}, headers=router_api.viewer)
    ).json()
    assert body["decision"]["priority"] == "P1" and body["decision"]["tags"] == ["vip"]
    assert body["decision"]["team"] == desk and body["decision"]["used_default"] is True

    draft = {"rules": [rule("draft", "nobody-yet", "printer")]}
    body = (
        await router_api.client.post(
            "/v1/routing/simulate",
            json={"ticket": gold, "ruleset": draft, "now": "2030-01-01T00:00:00Z"},
            headers=router_api.viewer,
        )
    ).json()
    assert body["draft"] is True and body["ruleset_version"] is None
    assert body["decision"]["team"] == "nobody-yet"
    assert any("unknown team" in w for w in body["warnings"])

    # A rule on urgency sees what routing's detector says of the text, as routing does.
    critical = {
        "rules": [
            rule("outage", network, None, when={"field": "urgency", "op": "equals", "value": "critical"})
        ]
    }
    outage = {"external_id": "s-2", "subject": "URGENT: production outage, everything is down"}
    body = (
        await router_api.client.post(
            "/v1/routing/simulate", json={"ticket": outage, "ruleset": critical}, headers=router_api.viewer
        )
    ).json()
    assert body["decision"]["team"] == network and body["decision"]["rule_id"] == "outage"

    bad = await router_api.client.post(
        "/v1/routing/simulate", json={"ticket": {"subject": "no id"}}, headers=router_api.viewer
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "/ticket/external_id"


async def test_replay_reports_changes(router_api: Router) -> None:
    old_team, new_team = await router_api.add_team("old"), await router_api.add_team("new")
    assert (await router_api.put_rules({"rules": [rule("printers", old_team, "printer")]})).status_code == 200
    # Tickets a century ahead of the wall clock are the newest (other tests' tickets are stamped
    # with the real time); a random old window isolates the window query.
    newest = datetime.now(UTC) + timedelta(days=36_525 + random.randint(0, 10_000))
    window = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(days=random.randint(0, 3_000))
    subjects = ["printer jam", "printer offline", "laptop broken"]
    async with router_api.app.state.sessions() as session, session.begin():
        for base in (newest, window):
            for index, subject in enumerate(subjects):
                external = uuid.uuid4().hex
                session.add(
                    RouterTicket(
                        ticket_key=f"replay:{external}",
                        source="replay",
                        external_id=external,
                        status="open",
                        team=old_team,
                        priority="P3",
                        language="en",
                        created_at=base + timedelta(minutes=index),
                        snapshot={"external_id": external, "subject": subject, "tags": ["x"]},
                    )
                )
        session.add(
            RouterTicket(
                ticket_key=f"replay:{uuid.uuid4().hex}",
                source="replay",
                external_id="broken",
                status="new",
                priority="P3",
                created_at=window + timedelta(minutes=30),
                snapshot={"subject": "no id"},
            )
        )
        stub = uuid.uuid4().hex  # cut down by retention: its text is gone, so it is not replayed
        session.add(
            RouterTicket(
                ticket_key=f"replay:{stub}",
                source="replay",
                external_id=stub,
                status="solved",
                team=old_team,
                priority="P3",
                created_at=window + timedelta(minutes=40),
                resolved_at=window + timedelta(minutes=50),
                pruned_at=window + timedelta(days=90),
                snapshot={"external_id": stub, "tags": ["x"]},
            )
        )
    draft = {"rules": [rule("printers", new_team, "printer")], "default_team": old_team}
    response = await router_api.client.post(
        "/v1/routing/replay", json={"ruleset": draft, "last": 3}, headers=router_api.viewer
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["total"] == 3 and report["changed"] == 3 and report["skipped"] == 0
    assert report["before"] == {old_team: 2, "triage": 1}
    assert report["after"] == {new_team: 2, old_team: 1}
    assert {(t["before"], t["after"], t["count"]) for t in report["transitions"]} == {
        (old_team, new_team, 2),
        ("triage", old_team, 1),
    }
    assert report["examples"][0]["ticket_key"].startswith("replay:")

    windowed = (
        await router_api.client.post(
            "/v1/routing/replay",
            json={
                "ruleset": draft,
                "since": window.isoformat(),
                "until": (window + timedelta(hours=1)).isoformat(),
            },
            headers=router_api.viewer,
        )
    ).json()
    assert windowed["total"] == 3 and windowed["skipped"] == 1 and windowed["truncated"] is False

    too_many = await router_api.client.post(
        "/v1/routing/replay", json={"ruleset": draft, "last": 10_001}, headers=router_api.viewer
    )
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "/last"
    neither = await router_api.client.post(
        "/v1/routing/replay", json={"ruleset": draft}, headers=router_api.viewer
    )
    assert neither.status_code == 422


async def test_replay_selection_errors_name_the_field(router_api: Router) -> None:
    """Errors in choosing the tickets named no field (``/``, the whole body)."""
    draft: dict[str, Any] = {"rules": []}
    since, until = "2024-05-02T00:00:00Z", "2024-05-01T00:00:00Z"
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"last": 5, "since": since}, "/last", "not both"),
        ({}, "/last", "either last"),
        ({"since": since, "until": until}, "/until", "after since"),
        ({"since": since, "until": since}, "/until", "after since"),
    ]
    for selection, field, message in cases:
        response = await router_api.client.post(
            "/v1/routing/replay", json={"ruleset": draft, **selection}, headers=router_api.viewer
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        errors = response.json()["errors"]
        assert [e["field"] for e in errors] == [field], errors
        assert message in errors[0]["message"] and not errors[0]["message"].startswith("Value error")


async def test_a_time_rule_is_simulated_at_the_end_of_the_calendar(router_api: Router) -> None:
    """9999-12-31T23:00Z is already year 10000 in Tokyo: evaluating a time rule there was a 500."""
    team = await router_api.add_team("tokyo")
    morning = {"field": "time_of_day", "op": "between", "value": ["07:00", "09:00"]}
    draft = {"timezone": "Asia/Tokyo", "rules": [rule("morning", team, None, when=morning)]}
    ticket = {"external_id": "end-1", "subject": "late"}
    response = await router_api.client.post(
        "/v1/routing/simulate",
        json={"ticket": ticket, "ruleset": draft, "now": "9999-12-31T23:00:00Z"},
        headers=router_api.viewer,
    )
    assert response.status_code == 200, response.text
    assert response.json()["decision"]["team"] == team
