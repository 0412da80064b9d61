"""``ticketctl sla``: documents applied from files become versions, validated like the API."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from services.ticketctl import sla as sla_cli
from services.ticketctl.main import app


def test_apply_show_and_history(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(sla_cli.console, "width", 250)
    cli, name = CliRunner(), f"cal-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "calendar.yaml"
    document = {"name": name, "timezone": "Europe/Tallinn", "weekly_hours": {"mon-fri": ["09:00-17:00"]}}

    path.write_text(yaml.safe_dump({**document, "timezone": "Mars/Olympus"}))
    invalid = cli.invoke(app, ["sla", "apply", "calendar", str(path)])
    assert invalid.exit_code == 1 and "/timezone" in invalid.output
    # Errors go to stderr, as every ticketctl command's: stdout stays what a script would parse.
    assert "/timezone" in invalid.stderr and "/timezone" not in invalid.stdout

    path.write_text(yaml.safe_dump(document))
    first = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--comment", "office hours"])
    assert first.exit_code == 0 and f"calendar {name} is now version 1" in first.output, first.output
    path.write_text(yaml.safe_dump({**document, "holidays": ["2026-12-24"]}))
    second = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--author", "ops"])
    assert second.exit_code == 0 and "version 2" in second.output, second.output

    shown = cli.invoke(app, ["sla", "show", "calendar", name])
    assert shown.exit_code == 0 and [h["day"] for h in yaml.safe_load(shown.output)["holidays"]] == [
        "2026-12-24"
    ]
    history = cli.invoke(app, ["sla", "history", "calendar", name])
    assert "v1" in history.output and '"office hours"' in history.output
    assert "v2" in history.output and "ops" in history.output


def test_show_and_history_name_what_they_cannot_find(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `sla history policy gold` of a name never saved, or a kind that is neither policy nor
    # calendar, printed nothing and exited 0, as for a name without history.
    monkeypatch.setenv("DATABASE_URL", database_url)
    cli, name = CliRunner(), f"none-{uuid.uuid4().hex[:8]}"
    missing = cli.invoke(app, ["sla", "history", "policy", name])
    assert missing.exit_code == 1 and f"no policy {name!r}" in missing.output, missing.output
    for command in ("history", "show"):
        wrong = cli.invoke(app, ["sla", command, "polciy", name])
        assert wrong.exit_code == 2 and "use policy or calendar" in wrong.output, wrong.output


def test_a_document_is_read_as_written(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SLA documents were read with YAML 1.1's implicit types, as rule sets no longer are: a key
    written twice kept the second silently, and an unquoted ``17:00`` was the integer 1020."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    cli, name, path = CliRunner(), f"cal-{uuid.uuid4().hex[:8]}", tmp_path / "calendar.yaml"
    lines = [f"name: {name}", "timezone: Europe/Tallinn", "weekly_hours: {mon-fri: [09:00-17:00]}"]
    path.write_text("\n".join([*lines, "timezone: UTC", ""]))
    twice = cli.invoke(app, ["sla", "apply", "calendar", str(path)])
    assert twice.exit_code == 1 and "line 4, column 1: duplicate key 'timezone'" in twice.output, twice.output
    path.write_text("\n".join([*lines, "holidays: [2026-12-24]", ""]))
    applied = cli.invoke(app, ["sla", "apply", "calendar", str(path)])
    assert applied.exit_code == 0, applied.output
    shown = yaml.safe_load(cli.invoke(app, ["sla", "show", "calendar", name]).output)
    assert shown["timezone"] == "Europe/Tallinn" and [h["day"] for h in shown["holidays"]] == ["2026-12-24"]


def test_one_file_applies_under_several_names(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--name`` names the version: one file without a ``name:`` (or with the same one) is
    applied under several names; a file naming another is refused, naming both."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(sla_cli.console, "width", 250)
    cli, tag = CliRunner(), uuid.uuid4().hex[:8]
    path = tmp_path / "office.yaml"
    office = {"timezone": "Europe/Tallinn", "weekly_hours": {"mon-fri": ["09:00-17:00"]}}
    path.write_text(yaml.safe_dump(office))

    nameless = cli.invoke(app, ["sla", "apply", "calendar", str(path)])
    assert nameless.exit_code == 1 and "--name" in nameless.output, nameless.output
    for name in (f"eu-{tag}", f"ee-{tag}"):
        applied = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--name", name])
        assert f"calendar {name} is now version 1" in applied.output, applied.output
        shown = yaml.safe_load(cli.invoke(app, ["sla", "show", "calendar", name]).output)
        assert shown["name"] == name and shown["timezone"] == "Europe/Tallinn"

    path.write_text(yaml.safe_dump({**office, "name": f"eu-{tag}", "timezone": "UTC"}))
    same = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--name", f"eu-{tag}"])
    assert same.exit_code == 0 and "version 2" in same.output, same.output
    differ = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--name", f"ee-{tag}"])
    assert differ.exit_code == 1, differ.output
    assert f"'eu-{tag}'" in differ.output and f"'ee-{tag}'" in differ.output
    assert len(differ.output.strip().splitlines()) == 1, differ.output
    history = cli.invoke(app, ["sla", "history", "calendar", f"ee-{tag}"]).output
    assert "v1" in history and "v2" not in history, history


def test_apply_saves_only_over_the_base_version_it_names(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``sla show`` names the version it printed; ``apply --base-version N`` saves only over N, so an
    edit of an old copy fails instead of silently overwriting what another admin saved since."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(sla_cli.console, "width", 250)
    cli, name, path = CliRunner(), f"cal-{uuid.uuid4().hex[:8]}", tmp_path / "calendar.yaml"
    document = {"name": name, "timezone": "Europe/Tallinn", "weekly_hours": {"mon-fri": ["09:00-17:00"]}}
    path.write_text(yaml.safe_dump(document))

    taken = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--base-version", "1"])
    assert taken.exit_code == 1 and f"calendar {name} is at version 0, not 1" in taken.stderr, taken.output
    created = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--base-version", "0"])
    assert created.exit_code == 0 and f"calendar {name} is now version 1" in created.output, created.output

    shown = cli.invoke(app, ["sla", "show", "calendar", name])
    assert "--base-version 1" in shown.output.splitlines()[1], shown.output
    edited = {**yaml.safe_load(shown.output), "timezone": "UTC"}  # the comments are YAML comments
    path.write_text(yaml.safe_dump(edited))
    # Another admin saves version 2 meanwhile.
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**document, "holidays": ["2026-12-24"]}))
    assert cli.invoke(app, ["sla", "apply", "calendar", str(other)]).exit_code == 0

    stale = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--base-version", "1"])
    assert stale.exit_code == 1 and f"calendar {name} is at version 2, not 1" in stale.stderr, stale.output
    assert "nothing saved" in stale.stderr and stale.stdout == ""
    live = yaml.safe_load(cli.invoke(app, ["sla", "show", "calendar", name]).output)
    assert live["timezone"] == "Europe/Tallinn" and live["holidays"], live  # version 2 stands
    rebased = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--base-version", "2"])
    assert rebased.exit_code == 0 and "version 3" in rebased.output, rebased.output


def test_dry_run_shows_the_diff_and_a_file_applied_again_adds_no_version(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(sla_cli.console, "width", 250)
    cli, name, path = CliRunner(), f"cal-{uuid.uuid4().hex[:8]}", tmp_path / "calendar.yaml"
    document = {"name": name, "timezone": "Europe/Tallinn", "weekly_hours": {"mon-fri": ["09:00-17:00"]}}
    path.write_text(yaml.safe_dump(document))

    new = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--dry-run"])
    assert new.exit_code == 0 and f"would create calendar {name} (version 1)" in new.output, new.output
    assert cli.invoke(app, ["sla", "show", "calendar", name]).exit_code == 1  # nothing saved
    assert cli.invoke(app, ["sla", "apply", "calendar", str(path)]).exit_code == 0

    path.write_text(yaml.safe_dump({**document, "timezone": "UTC"}))
    preview = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--dry-run"])
    assert preview.exit_code == 0, preview.output
    assert "changes against the live version 1:" in preview.output
    assert '~ timezone: "Europe/Tallinn" -> "UTC"' in preview.output, preview.output
    path.write_text(yaml.safe_dump({**document, "timezone": "Mars/Olympus"}))
    invalid = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--dry-run"])
    assert invalid.exit_code == 1 and "/timezone" in invalid.stderr, invalid.output

    path.write_text(yaml.safe_dump(document))  # what version 1 already is
    again = cli.invoke(app, ["sla", "apply", "calendar", str(path)])
    assert again.exit_code == 0, again.output
    assert f"calendar {name} is version 1 already: no changes, nothing saved" in again.output
    history = cli.invoke(app, ["sla", "history", "calendar", name]).output
    assert "v1" in history and "v2" not in history, history


def test_a_name_no_url_can_reach_is_refused(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The API's URL ``/v1/sla/calendars/<name>`` cannot carry a ``/`` (the server decodes ``%2F``
    before routing) nor a ``.`` or ``..`` segment (clients drop them): a calendar the CLI saved
    under such a name could never be read, changed or deleted over the API."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    cli, tag, path = CliRunner(), uuid.uuid4().hex[:8], tmp_path / "office.yaml"
    path.write_text(yaml.safe_dump({"timezone": "UTC", "weekly_hours": {"mon-fri": ["09:00-17:00"]}}))
    for name in (f"eu/{tag}", f"{tag}/versions", ".", ".."):
        refused = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--name", name])
        assert refused.exit_code == 1, refused.output
        assert "/name: must not hold '/'" in refused.stderr, refused.output
        assert cli.invoke(app, ["sla", "history", "calendar", name]).exit_code == 1  # nothing saved
    dotted = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--name", f"eu.{tag}"])
    assert dotted.exit_code == 0, dotted.output


def test_apply_refuses_an_author_no_api_key_could_be(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--author`` is the version's author and the audit entry's actor, as an API key's name is
    over the API: a blank one was saved (a change audited as made by nobody), and one longer than
    the 200 characters of those columns was saved on SQLite but failed PostgreSQL's INSERT with a
    driver error."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    cli, name, path = CliRunner(), f"cal-{uuid.uuid4().hex[:8]}", tmp_path / "calendar.yaml"
    path.write_text(yaml.safe_dump({"timezone": "UTC", "weekly_hours": {"mon-fri": ["09:00-17:00"]}}))
    for author in ("", " ", " ops", "a" * 201):
        refused = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--name", name, "--author", author])
        assert refused.exit_code == 1, (author, refused.output, refused.exception)
        assert "--author: 1 to 200 characters" in refused.stderr, refused.output
        assert cli.invoke(app, ["sla", "history", "calendar", name]).exit_code == 1  # nothing saved
    longest = cli.invoke(app, ["sla", "apply", "calendar", str(path), "--name", name, "--author", "a" * 200])
    assert longest.exit_code == 0, longest.output
