"""Secrets never reach a log line, even when a developer logs them by mistake."""

import io
import logging

import orjson

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
