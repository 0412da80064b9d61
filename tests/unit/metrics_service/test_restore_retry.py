"""A shard whose checkpoint cannot be read for the moment is read again, not given up on."""

from __future__ import annotations

from typing import Any, cast

import pytest
from sqlalchemy.exc import DBAPIError

from services.metrics.backlog import BacklogState
from services.metrics.ingest.consumer import BacklogIngest, Shard


class _ServerError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("canceling statement due to statement timeout")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["57014", "57P03"], ids=["statement-timeout", "starting-up"])
async def test_a_shard_restore_is_retried_after_a_statement_timeout(
    sqlstate: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The read of one checkpoint row outlived DATABASE_STATEMENT_TIMEOUT_S: the database is busy.
    # A consumer's message may fail so for good (it is dead-lettered in the end); this read has
    # none to give up on, and raising left the partition without its shard.
    ingest = BacklogIngest(cast(Any, None), retry_s=0.01)
    attempts = 0

    async def load(p: int) -> Shard:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise DBAPIError("SELECT ...", {}, _ServerError(sqlstate))
        return Shard(p, BacklogState(), {})

    monkeypatch.setattr(ingest, "_load_shard", load)
    shard = await ingest._restore(0)
    assert shard.partition == 0 and attempts == 3
