"""``ticketctl keys`` through the same service as ``/v1/api-keys``: audited as "ticketctl", the
last active admin key kept, bad input refused with a message."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.ticketctl import main as ticketctl
from services.ticketctl.main import app
from shared.db.audit import list_entries
from shared.db.engine import create_engine, session_factory
from shared.db.migrate import upgrade


async def audit_actions(url: str, key_id: str) -> list[tuple[str, str]]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            entries = await list_entries(session, entity="api_key", entity_id=key_id)
            return [(e.actor, e.action) for e in entries]
    finally:
        await engine.dispose()


def test_keys_are_created_listed_and_revoked_through_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"  # its own: the last-admin rule counts all keys
    upgrade(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setattr(ticketctl.console, "width", 250)
    cli = CliRunner()

    ids = []
    for name in ("first admin", "second admin"):
        created = cli.invoke(app, ["keys", "create", name, "--role", "admin"])
        assert created.exit_code == 0, created.output
        ids.append(re.search(r"id: (\S+)", created.output).group(1))  # type: ignore[union-attr]
        assert re.search(r"^tr_admin_\S{20,}$", created.output, re.MULTILINE)
    listed = cli.invoke(app, ["keys", "list"])
    assert all(key_id in listed.output for key_id in ids) and "tr_admin_" not in listed.output
    monkeypatch.setattr(ticketctl.console, "width", 80)  # a usual terminal: ids are not cut to fit
    narrow = cli.invoke(app, ["keys", "list"])
    assert all(key_id in narrow.output for key_id in ids), narrow.output
    monkeypatch.setattr(ticketctl.console, "width", 250)
    # A name that reads as Rich markup is printed as it is, and does not stop the listing.
    assert cli.invoke(app, ["keys", "create", "[/oops]", "--role", "viewer"]).exit_code == 0
    odd = cli.invoke(app, ["keys", "list"])
    assert odd.exit_code == 0 and "[/oops]" in odd.output, odd.output

    assert cli.invoke(app, ["keys", "revoke", ids[0]]).exit_code == 0
    again = cli.invoke(app, ["keys", "revoke", ids[0]])
    assert (again.exit_code, "revoked already" in again.output) == (0, True)
    last = cli.invoke(app, ["keys", "revoke", ids[1]])
    assert last.exit_code == 1 and "last active admin key" in last.output
    unknown = cli.invoke(app, ["keys", "revoke", str(uuid.uuid4())])
    assert unknown.exit_code == 1 and "no API key" in unknown.output
    blank = cli.invoke(app, ["keys", "create", " "])
    assert blank.exit_code == 1 and "pattern" in blank.output

    assert asyncio.run(audit_actions(url, ids[0])) == [("ticketctl", "revoke"), ("ticketctl", "create")]
    assert asyncio.run(audit_actions(url, ids[1])) == [("ticketctl", "create")]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["migrate", "no-such-revision"], "CommandError"),
        (["keys", "list"], "NoSuchModuleError"),  # DATABASE_URL with a dialect SQLAlchemy lacks
    ],
)
def test_database_and_migration_failures_are_one_line_not_a_traceback(
    argv: list[str],
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = "s3cret-pass"
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
        if argv[0] == "migrate"
        else f"nosuchdb://u:{password}@h/db"  # postgres:// is named by ticketctl (test_ticketctl_errors)
    )
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setattr("sys.argv", ["ticketctl", *argv])
    with pytest.raises(SystemExit) as exited:
        ticketctl.main()
    err = capsys.readouterr().err
    assert exited.value.code == 1 and says in err and "Traceback" not in err and password not in err
