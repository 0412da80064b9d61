"""``ticketctl rules`` and ``ticketctl teams`` on the database, through the same services as the API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from services.router.rulesets import service
from services.ticketctl import rules as rules_cli
from services.ticketctl import teams as teams_cli
from services.ticketctl.dev import seed
from services.ticketctl.main import app
from shared.db.audit import list_entries
from shared.db.engine import create_engine, session_factory
from tests.integration.router_api.helpers import live_rules, restore_live_rules


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    for console in (rules_cli.console, rules_cli.errors, teams_cli.console, teams_cli.errors):
        monkeypatch.setattr(console, "width", 250)  # no wrapping or ellipsis in the captured tables

    async def on_database(work: Callable[[Any], Awaitable[Any]]) -> Any:
        engine = create_engine(database_url)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    asyncio.run(seed(database_url, sla=False))  # see running_router
    before = asyncio.run(on_database(live_rules))
    yield CliRunner()
    asyncio.run(on_database(lambda sessions: restore_live_rules(sessions, before)))


def live_version(database_url: str) -> int:
    async def read() -> int:
        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                return (await service.live(session)).version or 0
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_teams_and_rules_as_code(cli: CliRunner, database_url: str, tmp_path: Path) -> None:
    team = f"cli-{uuid.uuid4().hex[:8]}"
    added = cli.invoke(app, ["teams", "add", team, "--capacity", "7", "--language", "en", "--skill", "vpn"])
    assert added.exit_code == 0, added.output
    bad = cli.invoke(app, ["teams", "add", f"x{team}", "--language", "klingon"])
    assert bad.exit_code == 1 and "/languages" in bad.output
    updated = cli.invoke(app, ["teams", "update", team, "--capacity", "9"])
    assert updated.exit_code == 0 and "revision 2" in updated.output
    listed = cli.invoke(app, ["teams", "list"])
    assert team in listed.output

    exported = cli.invoke(app, ["rules", "export"])
    assert exported.exit_code == 0, exported.output
    document = yaml.safe_load(exported.stdout) or {}
    document["rules"] = [
        {
            "id": "cli-vpn",
            "name": "VPN via CLI",
            "when": {"field": "subject", "op": "contains", "value": "vpn"},
            "actions": {"assign_team": team},
        }
    ]
    document.pop("default_team", None)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document))
    before = live_version(database_url)

    dry = cli.invoke(app, ["rules", "apply", str(path), "--dry-run"])
    assert dry.exit_code == 0 and "+ rule cli-vpn" in dry.output
    assert live_version(database_url) == before
    declined = cli.invoke(app, ["rules", "apply", str(path)], input="n\n")
    assert declined.exit_code == 1 and live_version(database_url) == before
    applied = cli.invoke(app, ["rules", "apply", str(path)], input="y\n")
    assert applied.exit_code == 0, applied.output
    assert live_version(database_url) == before + 1
    versions = cli.invoke(app, ["rules", "versions", "--limit", "1"])
    assert "ticketctl" in versions.output and str(before + 1) in versions.output

    # Errors name the rule and the field.
    path.write_text(
        "rules:\n  - id: broken\n    name: Broken\n    when: {field: subject, op: gt, value: 1}\n"
        "    actions: {assign_team: " + team + "}\n"
    )
    invalid = cli.invoke(app, ["rules", "apply", str(path), "--yes"])
    assert invalid.exit_code == 1 and "rules[0] (id broken).when.op" in invalid.output
    path.write_text("rules:\n  - id: ghost\n    name: Ghost\n    actions: {assign_team: no-such-team}\n")
    unknown = cli.invoke(app, ["rules", "apply", str(path), "--yes"])
    assert unknown.exit_code == 1 and "/rules/0/actions/assign_team" in unknown.output
    assert "rule 'ghost'" in unknown.output

    if before > 0:
        rolled = cli.invoke(app, ["rules", "rollback", str(before), "--yes"])
        assert rolled.exit_code == 0, rolled.output
        assert live_version(database_url) == before + 2

    async def audit_actors() -> list[str]:
        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                return [e.actor for e in await list_entries(session, entity="ruleset", limit=1)]
        finally:
            await engine.dispose()

    assert asyncio.run(audit_actors()) == ["ticketctl"]


def test_team_schedule_from_a_file(cli: CliRunner, tmp_path: Path) -> None:
    team = f"cli-{uuid.uuid4().hex[:8]}"
    good, bad = tmp_path / "shifts.yaml", tmp_path / "bad.json"
    good.write_text(
        "tickets_per_agent: 5\nshifts:\n  - {name: day, hours: {mon-fri: '09:00-17:00'}, agents: 2}\n"
    )
    bad.write_text('{"tickets_per_agent": 5, "shifts": [{"name": "day", "hours": {}, "agents": -2}]}')
    rejected = cli.invoke(app, ["teams", "add", team, "--schedule", str(bad)])
    assert rejected.exit_code == 1 and "/schedule/shifts/0/agents" in rejected.output
    added = cli.invoke(app, ["teams", "add", team, "--schedule", str(good)])
    assert added.exit_code == 0, added.output
    dropped = cli.invoke(app, ["teams", "update", team, "--no-schedule"])
    assert dropped.exit_code == 0 and "revision 2" in dropped.output
    again = cli.invoke(app, ["teams", "update", team, "--schedule", str(good)])
    assert again.exit_code == 0 and "revision 3" in again.output
    rejected = cli.invoke(app, ["teams", "update", team, "--schedule", str(bad)])
    assert rejected.exit_code == 1 and "/schedule/shifts/0/agents" in rejected.output
    # Both at once is a usage error, as for --calendar and --no-calendar: --no-schedule won, and the
    # file given beside it was dropped along with the schedule the team had, without a word.
    both = cli.invoke(app, ["teams", "update", team, "--schedule", str(good), "--no-schedule"])
    assert both.exit_code != 0 and "--no-schedule" in both.output, both.output
    kept = cli.invoke(app, ["teams", "update", team, "--description", "kept"])
    assert kept.exit_code == 0 and "revision 4" in kept.output, kept.output


def test_a_team_calendar_set_on_the_command_line_can_be_dropped(cli: CliRunner) -> None:
    # The API clears it with "calendar": null; `--calendar ""` is refused (at least 1 character).
    team = f"cli-{uuid.uuid4().hex[:8]}"
    assert cli.invoke(app, ["teams", "add", team, "--calendar", "office"]).exit_code == 0
    dropped = cli.invoke(app, ["teams", "update", team, "--no-calendar"])
    assert dropped.exit_code == 0 and "revision 2" in dropped.output, dropped.output
    listed = cli.invoke(app, ["teams", "list"])
    (row,) = [line for line in listed.output.splitlines() if f" {team} " in line]
    assert "office" not in row
    both = cli.invoke(app, ["teams", "update", team, "--calendar", "office", "--no-calendar"])
    assert both.exit_code != 0 and "--no-calendar" in both.output


def test_a_team_skills_and_languages_can_be_cleared(cli: CliRunner) -> None:
    # The API sets "skills": []; on the command line --skill replaces them, and none given left them.
    team = f"cli-{uuid.uuid4().hex[:8]}"
    assert cli.invoke(app, ["teams", "add", team, "--skill", "vpn", "--language", "et"]).exit_code == 0
    cleared = cli.invoke(app, ["teams", "update", team, "--no-skills", "--no-languages"])
    assert cleared.exit_code == 0 and "revision 2" in cleared.output, cleared.output
    listed = cli.invoke(app, ["teams", "list"])
    (row,) = [line for line in listed.output.splitlines() if f" {team} " in line]
    assert "vpn" not in row and " et " not in row, row
    both = cli.invoke(app, ["teams", "update", team, "--skill", "vpn", "--no-skills"])
    assert both.exit_code != 0 and "--no-skills" in both.output


def test_rules_apply_checks_the_sla_policies_rules_name(
    cli: CliRunner, database_url: str, tmp_path: Path
) -> None:
    """`rules apply` (and its --dry-run) refuses a policy that does not exist, as the API does."""
    team, policy = f"cli-{uuid.uuid4().hex[:8]}", f"cli-pol-{uuid.uuid4().hex[:8]}"
    assert cli.invoke(app, ["teams", "add", team]).exit_code == 0
    policy_file = tmp_path / "policy.yaml"
    # Applies to no ticket: the database, and so its live policies, is shared with later tests.
    never = {"field": "customer_tier", "op": "equals", "value": "no tier has this name"}
    policy_file.write_text(yaml.safe_dump({"name": policy, "applies_when": never}))
    created = cli.invoke(app, ["sla", "apply", "policy", str(policy_file)])
    assert created.exit_code == 0, created.output

    def rules_naming(name: str) -> Path:
        path = tmp_path / "rules.yaml"
        actions = {"assign_team": team, "sla_policy": name}
        path.write_text(yaml.safe_dump({"rules": [{"id": "cli-sla", "name": "SLA", "actions": actions}]}))
        return path

    before = live_version(database_url)
    for options in (["--dry-run"], ["--yes"]):
        refused = cli.invoke(app, ["rules", "apply", str(rules_naming(f"{policy}x")), *options])
        assert refused.exit_code == 1, refused.output
        expected = f"/rules/0/actions/sla_policy: rule 'cli-sla': unknown SLA policy '{policy}x'"
        assert expected in refused.output
    assert live_version(database_url) == before
    applied = cli.invoke(app, ["rules", "apply", str(rules_naming(policy)), "--yes"])
    assert applied.exit_code == 0, applied.output
    assert live_version(database_url) == before + 1


def test_u0000_in_a_file_is_refused_naming_where(cli: CliRunner, database_url: str, tmp_path: Path) -> None:
    """The API refuses U+0000 anywhere (PostgreSQL stores it in no text). A file's ``"\\0"`` (YAML)
    or ``"\\u0000"`` (JSON) was stored on SQLite, and on PostgreSQL failed the INSERT with a driver
    error naming no field: now each command refuses it naming the file and where in it, and saves
    nothing."""
    team = f"cli-{uuid.uuid4().hex[:8]}"
    before = live_version(database_url)
    rules_file, schedule, calendar = tmp_path / "rules.yaml", tmp_path / "shifts.yaml", tmp_path / "c.json"
    rules_file.write_text('rules:\n  - id: nul\n    name: "a\\0b"\n    actions: {route_to_triage: true}\n')
    schedule.write_text(
        'tickets_per_agent: 5\nshifts:\n  - {name: "d\\0y", hours: {mon-fri: "09:00-17:00"}, agents: 2}\n'
    )
    calendar.write_text(
        '{"timezone": "UTC", "weekly_hours": {"mon-fri": "09:00-17:00"}, '
        '"holidays": [{"day": "2026-12-24", "name": "x\\u0000"}]}'
    )
    cases = [
        (["rules", "apply", str(rules_file), "--yes"], "/rules/0/name: must not contain U+0000"),
        (["teams", "add", team, "--schedule", str(schedule)], "/shifts/0/name: must not contain U+0000"),
        (["sla", "apply", "calendar", str(calendar), "--name", team], "/holidays/0/name: must not contain"),
    ]
    for argv, says in cases:
        refused = cli.invoke(app, argv)
        assert refused.exit_code == 1, (argv, refused.output, refused.exception)
        assert says in refused.stderr, refused.output
    assert live_version(database_url) == before
    assert team not in cli.invoke(app, ["teams", "list", "--all"]).output
    assert cli.invoke(app, ["sla", "history", "calendar", team]).exit_code == 1


def test_a_file_nested_too_deeply_is_one_line_not_a_traceback(cli: CliRunner, tmp_path: Path) -> None:
    """PyYAML composes a document recursively: a file nesting a few hundred ``[`` (YAML or JSON)
    ended `rules apply`, `sla apply` and `teams --schedule` in a RecursionError traceback."""
    deep = tmp_path / "deep.json"
    deep.write_text('{"rules": ' + "[" * 5_000 + "]" * 5_000 + "}")
    cases = [
        ["rules", "apply", str(deep), "--dry-run"],
        ["sla", "apply", "calendar", str(deep), "--name", f"deep-{uuid.uuid4().hex[:8]}"],
        ["teams", "add", f"deep-{uuid.uuid4().hex[:8]}", "--schedule", str(deep)],
    ]
    for argv in cases:
        refused = cli.invoke(app, argv)
        assert refused.exit_code == 1 and not isinstance(refused.exception, RecursionError), argv
        assert "nested too deeply" in refused.stderr, refused.output
