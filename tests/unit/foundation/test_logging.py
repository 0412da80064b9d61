"""Secrets never reach a log line, even when a developer logs them by mistake."""

import io
import logging

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from shared.db.engine import create_engine
from shared.logging import JsonFormatter, scrub


def test_scrub_masks_keys_bearer_tokens_and_url_passwords():
    line = scrub(
        "auth Bearer abcdefghijklmnop key=tr_admin_AbCdEf123456789 "
        "url=postgresql+asyncpg://app:hunter2@db:5432/x secret=topsecretvalue"
    )
    assert "abcdefghijklmnop" not in line
    assert "AbCdEf123456789" not in line
    assert "hunter2" not in line and "app:***@db" in line
    assert "topsecretvalue" not in line


def test_json_formatter_scrubs_message_extras_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("scrub-test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("failed with api_key=tr_intake_SECRETSECRET1")
        except RuntimeError:
            logger.exception(
                "posting with Bearer tr_intake_SECRETSECRET2", extra={"url": "postgresql://u:pw123456@h/db"}
            )
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    entry = orjson.loads(text)
    assert entry["service"] == "test" and entry["level"] == "error"
    for secret in ("SECRETSECRET1", "SECRETSECRET2", "pw123456"):
        assert secret not in text


def test_scrub_masks_the_parameters_sqlalchemy_quotes_in_its_errors():
    line = scrub(
        "(sqlite3.IntegrityError) UNIQUE constraint failed: sources.name\n"
        "[SQL: INSERT INTO sources (name, secrets) VALUES (?, ?)]\n"
        "[parameters: ('github-main', '[\"whsec-LEAKME\"]')]\n"
        "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
    )
    assert "whsec-LEAKME" not in line and "[SQL: INSERT INTO sources" in line and "Background" in line


async def test_database_errors_do_not_carry_the_statements_parameters():
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE s (name TEXT PRIMARY KEY, secret TEXT)"))
            insert = text("INSERT INTO s VALUES (:name, :secret)")
            await connection.execute(insert, {"name": "a", "secret": "whsec-one"})
            with pytest.raises(IntegrityError) as raised:
                await connection.execute(insert, {"name": "a", "secret": "whsec-LEAKME"})
    finally:
        await engine.dispose()
    assert "whsec-LEAKME" not in str(raised.value) and "UNIQUE" in str(raised.value)


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),  # a Zendesk write-back's
        ("{'authorization': 'Token abcdef123456'}", "abcdef123456"),
        ('"Authorization": "tr_admin_abcdefghijklmnop"', "abcdefghijklmnop"),
        ("Proxy-Authorization: Basic cHJveHk6cGFzcw==", "cHJveHk6cGFzcw=="),
        ("{'X-Hub-Signature-256': 'sha256=abcdef0123456789'}", "abcdef0123456789"),
        ("postgresql://:nouserpw@db/x", "nouserpw"),
    ],
)
def test_scrub_masks_any_authorization_scheme_and_signature_headers(line: str, secret: str) -> None:
    assert secret not in scrub(line), scrub(line)


def test_json_formatter_scrubs_structured_extras_too():
    """An extra that is a dict, a list or an exception was written as it was: only str extras were
    scrubbed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("scrub-structured-test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "request failed",
            extra={
                "headers": {"Authorization": "Bearer tr_admin_SECRETSECRET3", "X-Count": 2},
                "urls": ["postgresql://app:pw7654321@db/x"],
                "error": ValueError("cannot connect to postgresql://app:pw1234567@db/x"),
                "attempt": 3,
            },
        )
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    entry = orjson.loads(text)
    for secret in ("SECRETSECRET3", "pw7654321", "pw1234567"):
        assert secret not in text
    assert entry["headers"]["X-Count"] == 2 and entry["attempt"] == 3
    assert entry["urls"] == ["postgresql://app:***@db/x"]
