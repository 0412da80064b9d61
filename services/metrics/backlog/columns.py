"""Encoding of the per-ticket columns, shared by :mod:`.state` and :mod:`.transitions`.

Timestamps are int64 epoch milliseconds; flags are bits of the ``a_flags`` column; priority and
status are codes into :data:`.config.PRIORITIES` / :data:`.config.STATUSES`, so a per-team list
of gauges is indexed ``team * NP + priority`` or ``team * NS + status``. ``a_res_warn`` is the
router's resolution warning instant, stored with ``a_res_due``; UNSET from a router older than
that field, and the at-risk gauge then estimates it (see :func:`.transitions.warn_at`). ``a_verdict``
is 1 for a ticket whose breaches follow the router's verdicts (``state.sla.*_breached``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import TypeAdapter

from shared.events import UtcDatetime

from .config import PRIORITIES, STATUSES

UNSET = -(1 << 62)  # "no timestamp" in the int64 millisecond columns
NEVER = 1 << 62  # "no pending time transition"
MASK32 = 0xFFFFFFFF  # heap entries are ``instant << 32 | slot``
# A creation instant is kept within +-2^42 ms of 1970 (1830 to 2109): the per-team sums of open
# tickets' creation instants go into the checkpoint's JSON, which holds 64-bit integers, and a
# source stating year 9999 overflowed them with 73k tickets (no checkpoint of the shard after
# that). Within the bound it takes 2M open tickets of one team in one partition; a ticket created
# past 2109 is aged 0 until then all the same.
CREATED_BOUND = 1 << 42  # as stored; intervals (histograms, first-response target) use the stated one
# Heaps and FIFOs are compacted once stale entries outnumber live ones by this much.
COMPACT_SLACK = 65_536

_CONTRACT_DATETIME: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)
_CONTRACT_INT: TypeAdapter[int] = TypeAdapter(int)
_CONTRACT_BOOL: TypeAdapter[bool] = TypeAdapter(bool)

F_OPEN, F_RESPONDED, F_PAUSED, F_AT_RISK, F_OVERDUE = 1, 2, 4, 8, 16
F_FR_BREACHED, F_RES_BREACHED, F_ROUTED, F_FR_SEEN = 32, 64, 128, 256
# F_RECEIVED: counted in tickets_received_total; F_NO_STATE: known from ticket events only, no
# routing state yet. F_*_DUE_OFF: the deadline is withdrawn (paused, solved); its column keeps the
# last one set, so that restoring the same deadline does not re-arm its breach.
F_RECEIVED, F_NO_STATE, F_FR_DUE_OFF, F_RES_DUE_OFF = 512, 1024, 2048, 4096
# F_*_PENDING: the deadline was already past when the state carrying it arrived; its breach counts
# when the clock moves on, unless the ticket's next state at that instant settles it first (see
# .transitions.add_open). An older release reading such a checkpoint counts it at its next tick.
F_FR_PENDING, F_RES_PENDING = 8192, 16384
# F_ENTERED: entered a team's open set by a state of the event instant the state is at (listed in
# its entered_slots): leaving that set by another state of that instant, it is no flow in or out.
F_ENTERED = 32768

NP, NS = len(PRIORITIES), len(STATUSES)


def to_ms(value: object) -> int:
    """A timestamp as the event contract accepts it (ISO string, datetime, Unix seconds or
    milliseconds; naive = UTC) -> epoch milliseconds; None -> UNSET."""
    if value is None:
        return UNSET
    # Only the extended ISO form is read directly: to the contract, digits are Unix time
    # ("20240101" is 1970-08-23), which fromisoformat would read as the basic form of a date.
    try:
        dt = datetime.fromisoformat(value) if isinstance(value, str) and value[4:5] == "-" else value
    except ValueError:
        dt = None
    if not isinstance(dt, datetime):
        dt = _CONTRACT_DATETIME.validate_python(value)  # what pydantic let through; raises if not
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


def to_int(value: object) -> int:
    """An integer as the event contract accepts it (pydantic's lax mode: ``"3"``, ``3.0``)."""
    return value if type(value) is int else _CONTRACT_INT.validate_python(value)


def to_bool(value: object) -> bool:
    """A bool as the event contract accepts it (``"false"``, ``0``...); None (absent) -> False."""
    if value is None or type(value) is bool:
        return bool(value)
    return _CONTRACT_BOOL.validate_python(value)
