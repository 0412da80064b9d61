#!/usr/bin/env python
"""Wait until the database schema is at the migration heads this image ships, then exit 0.

Kubernetes runs it as an init container of every Deployment: the migration Job upgrades the schema
once, and pods of a new version start only after it did (exit 1 on timeout; the pod then restarts).
A schema a newer version migrated is ready too: rolling back is deploying the previous image.
Usage: ticket-router-wait-for-schema [--timeout SECONDS] [--interval SECONDS]  (DATABASE_URL)
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.db.migrate import current_heads, expected_heads, unknown_revisions
from shared.settings import CommonSettings

__all__ = ["current_heads", "expected_heads", "main", "wait_for_schema"]


async def wait_for_schema(database_url: str, timeout_s: float, interval_s: float) -> str | None:
    """None once the schema is at the expected heads, or at a revision of a newer version (this
    image's code runs on it: a rollback), else why not (after ``timeout_s``)."""
    wanted = expected_heads(database_url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            found = await current_heads(database_url)
            ready = found == wanted or bool(unknown_revisions(database_url, found))
            reason = None if ready else f"schema at {sorted(found)}, waiting for {sorted(wanted)}"
        except Exception as exc:  # the database may still be starting: keep waiting
            reason = f"database unreachable: {type(exc).__name__}"
        if reason is None or loop.time() >= deadline:
            return reason
        await asyncio.sleep(interval_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds before giving up.")
    parser.add_argument("--interval", type=float, default=2.0, help="Seconds between checks.")
    args = parser.parse_args()
    reason = asyncio.run(wait_for_schema(CommonSettings().database_url, args.timeout, args.interval))
    if reason is not None:
        print(f"schema not ready: {reason}", file=sys.stderr)
        return 1
    print("schema is at the expected migration heads, or newer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
