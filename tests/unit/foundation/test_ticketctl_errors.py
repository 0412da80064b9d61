"""``ticketctl`` given a bad input file or a mistaken DATABASE_URL: one readable line naming the
problem and exit status 1, never a traceback (nor "Aborted.", nor the database password)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from sqlalchemy.exc import ArgumentError

from services.ticketctl import main as ticketctl
from services.ticketctl.database import DatabaseUrlError, checked_url
from shared.db.migrate import upgrade

PASSWORD = "s3cret-pass"
BAD_YAML = b"name: gold\ntargets: {P1: [unclosed\n"
NOT_UTF8 = b"\xff\xfe\x00garbage"


def run_main(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """``ticketctl ARGV`` as the console script runs it; returns what it printed (stdout + stderr)
    once it has exited with status 1."""
    monkeypatch.setattr("sys.argv", ["ticketctl", *argv])
    with pytest.raises(SystemExit) as exited:
        ticketctl.main()
    captured = capsys.readouterr()
    printed = (captured.out + captured.err).strip()
    assert exited.value.code == 1, printed
    assert "Traceback" not in printed and "Aborted" not in printed, printed
    assert "\n" not in printed, f"not one line:\n{printed}"
    return printed


@pytest.fixture(autouse=True)
def _local_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The file checks come before any query; a local URL keeps a mistake from reaching a server.
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))  # dev run's, never the working directory's


COMMANDS = {
    "sla apply": ["sla", "apply", "policy"],
    "rules apply": ["rules", "apply"],
    "teams add": ["teams", "add", "ops", "--schedule"],
    "teams update": ["teams", "update", "ops", "--schedule"],
}
YAML_SAYS = "is not valid YAML at line 3, column 1: expected ',' or ']'"
UTF8_SAYS = "is not UTF-8 text (byte 0 is 0xff)"
CASES = [(cmd, NOT_UTF8, UTF8_SAYS) for cmd in COMMANDS] + [
    # rules apply lists a rule set's problems under a heading, YAML's among them: not here.
    (cmd, BAD_YAML, YAML_SAYS)
    for cmd in COMMANDS
    if cmd != "rules apply"
]


@pytest.mark.parametrize(("command", "content", "says"), CASES)
def test_a_bad_document_file_is_one_line_naming_it(
    command: str,
    content: bytes,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "document.yaml"
    path.write_bytes(content)
    printed = run_main([*COMMANDS[command], str(path)], monkeypatch, capsys)
    assert f"{path} {says}" in printed, printed


def test_a_truncated_or_damaged_gzip_is_named_not_aborted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = gzip.compress(b"text,category\nprinter on fire,hardware\n" * 50, mtime=0)
    truncated = tmp_path / "history.csv.gz"
    truncated.write_bytes(whole[: len(whole) // 2])  # EOFError, which click turns into "Aborted."
    printed = run_main(["classifier", "train", str(truncated), "--label", "category"], monkeypatch, capsys)
    assert f"{truncated}: damaged or truncated gzip data" in printed, printed

    damaged = tmp_path / "damaged.csv.gz"
    damaged.write_bytes(whole[:10] + b"\xff\xff" + whole[12:])  # zlib.error: invalid block type
    printed = run_main(["classifier", "train", str(damaged), "--label", "category"], monkeypatch, capsys)
    assert f"{damaged}: damaged or truncated gzip data" in printed, printed


def test_a_classifier_command_reports_its_error_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # stdout is the command's result (evaluate --json is piped into other tools): never an error.
    missing = tmp_path / "missing.csv"
    monkeypatch.setattr("sys.argv", ["ticketctl", "classifier", "train", str(missing), "--label", "category"])
    with pytest.raises(SystemExit) as exited:
        ticketctl.main()
    captured = capsys.readouterr()
    assert exited.value.code == 1
    assert captured.out == ""
    assert f"cannot read {missing}" in captured.err


def test_a_labelled_file_that_is_not_utf8_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    latin1 = tmp_path / "history.csv"
    latin1.write_bytes("text,category\ncafé,hardware\n".encode("latin-1"))
    printed = run_main(["classifier", "train", str(latin1), "--label", "category"], monkeypatch, capsys)
    assert f"{latin1} is not UTF-8 text" in printed, printed


@pytest.mark.parametrize("command", [["teams", "list"], ["migrate"], ["dev", "run"]])
@pytest.mark.parametrize(
    ("url", "says"),
    [
        # Another driver named outright: SQLAlchemy would load psycopg2, which is not installed.
        (
            f"postgresql+psycopg2://app:{PASSWORD}@127.0.0.1:1/db",
            "postgresql+psycopg2:// is not supported: use postgresql+asyncpg://",
        ),
        ("sqlite+pysqlite:////tmp/ticketctl-never-created.db", "is not supported: use sqlite+aiosqlite:///"),
        # SQLAlchemy's parse error quotes the whole URL.
        (f"postgresql+asyncpg://app:{PASSWORD}@db:port/x", "cannot be read as scheme://"),
    ],
)
def test_database_url_mistakes_are_one_line_without_the_password(
    command: list[str],
    url: str,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    printed = run_main(command, monkeypatch, capsys)
    assert printed.startswith("ticketctl: DATABASE_URL: ") and says in printed, printed
    assert PASSWORD not in printed


def test_a_url_quoted_in_an_error_loses_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As SQLAlchemy's parse error reaches main() from a path without the check (dev run's migrations).
    def app() -> None:
        raise ArgumentError(
            f"Could not parse SQLAlchemy URL from string 'postgresql+asyncpg://u:{PASSWORD}@h/x'"
        )

    monkeypatch.setattr(ticketctl, "app", app)
    printed = run_main([], monkeypatch, capsys)
    assert printed.startswith("ticketctl: ArgumentError: Could not parse"), printed
    assert PASSWORD not in printed


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///var/ticket-router.db",
        "postgresql+asyncpg://app:pw@db:5432/x",
        "postgresql+asyncpg://app:pw@db/x?ssl=require",
        "mysql+aiomysql://app:pw@db/x",  # not ours to judge: SQLAlchemy reports what it cannot load
    ],
)
def test_working_urls_pass_unchanged(url: str) -> None:
    assert checked_url(url) == url


def test_the_check_reads_database_url_as_the_services_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@db/x?sslmode=require")
    assert checked_url() == "postgresql+asyncpg://app:pw@db/x?ssl=require"
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://app:pw@db/x")
    with pytest.raises(DatabaseUrlError):
        checked_url()


@pytest.mark.parametrize(
    ("command", "variable", "value", "says"),
    [
        (["migrate"], "LOG_LEVEL", "chatty", "ticketctl: LOG_LEVEL: expected DEBUG, INFO"),
        (["keys", "list"], "TOPIC_PARTITIONS", "six", "ticketctl: TOPIC_PARTITIONS: Input should be a valid"),
        (["dev", "run"], "ROUTER_LOAD_COUNTED_STATUSES", "new,opne", "unknown status 'opne'"),
        # The embedded broker listens on the port this names (README: KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:PORT).
        (["dev", "run"], "KAFKA_BOOTSTRAP_SERVERS", "localhost", "KAFKA_BOOTSTRAP_SERVERS: expected host"),
        (["dev", "run"], "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:kafka", "KAFKA_BOOTSTRAP_SERVERS: expected"),
    ],
)
def test_a_mistaken_setting_is_one_line_naming_the_variable(
    command: list[str],
    variable: str,
    value: str,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    printed = run_main(command, monkeypatch, capsys)
    assert says in printed, printed


@pytest.mark.parametrize(
    "command",
    [
        ["writeback", "retry", "99999999999999999999"],
        ["rules", "rollback", "99999999999999999999", "--yes"],
        ["classifier", "activate", "99999999999999999999"],
    ],
)
def test_an_id_beyond_any_row_is_a_usage_error_not_an_overflow(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # SQLite's driver raised OverflowError binding it: a traceback, not "no delivery ...".
    upgrade(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    monkeypatch.setattr("sys.argv", ["ticketctl", *command])
    with pytest.raises(SystemExit) as exited:
        ticketctl.main()
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert exited.value.code in (1, 2), printed
    assert "Traceback" not in printed and "OverflowError" not in printed, printed


@pytest.mark.parametrize(
    "command",
    [["keys", "revoke"], ["teams", "update"], ["sources", "remove"], ["sla", "history", "policy"]],
)
def test_an_argument_that_is_not_utf8_is_named(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A name typed in a Latin-1 terminal: Python hands the byte over as a lone surrogate, which
    # every database driver refused with a UnicodeEncodeError traceback.
    upgrade(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    printed = run_main([*command, name], monkeypatch, capsys)
    assert printed.startswith("ticketctl: ") and "is not UTF-8 text (byte 0xe9)" in printed, printed
