"""JSON logging for every service, with secrets scrubbed before a line is written."""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from datetime import UTC, date, datetime, time
from enum import Enum
from typing import Any
from uuid import UUID

import orjson

# Anything that looks like a credential is masked even if a developer logs it by mistake.
_SECRET_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # An Authorization header's credentials, whatever the scheme (Basic, Token, none).
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:[A-Za-z][\w-]*\s+)?)[^\s\"',}]+"),
    re.compile(
        r"(?i)((?:api[_-]?key|secret|password|token|signature(?:-\d+)?)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{4,}"
    ),
    re.compile(r"\b(tr_(?:intake|admin|editor|viewer)_)[A-Za-z0-9_-]{8,}"),
    re.compile(r"(://[^:/@\s]*:)[^@\s]+(?=@)"),  # passwords inside URLs (DATABASE_URL)
    # SQLAlchemy's errors quote the statement's parameters: a source's secrets, a target's token.
    re.compile(r"(\[parameters: )[^\n]+"),
]

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def scrub(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


def _scrubbed(value: Any) -> Any:
    """A log record's extra, scrubbed however deep: strings, and the text of any other object
    (an exception, a URL) that the JSON line would carry as ``str(value)``."""
    if value is None or isinstance(value, bool | int | float | datetime | date | time | UUID):
        return value  # as orjson writes them
    if isinstance(value, Enum):
        return _scrubbed(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _scrubbed(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrubbed(item) for item in value]
    return scrub(value if isinstance(value, str) else str(value))


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = _scrubbed(value)
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(ScrubbingFormatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn installs its own handlers; route them through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
