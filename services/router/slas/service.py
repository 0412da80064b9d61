"""Versioned storage and validation of SLA policies and business calendars.

Same model as rule sets: every change is a new immutable version with author, comment and a
diff against the previous one; a deletion is a version too (``deleted``), so history survives.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime, timedelta
from typing import Any, get_args
from urllib.parse import quote

from pydantic import BaseModel, ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.config_lock import lock_config
from services.router.sla import BusinessCalendar
from services.router.sla.calendar import (
    ALWAYS_OPEN,
    DEADLINE_HORIZON_YEARS,
    MAX_DAY_INTERVALS,
    MAX_HOLIDAYS,
    check_new_timezone,
    intervals_by_key,
    least_open_time_within_horizon,
    weekly_hours_origins,
)
from services.router.sla.policy import (
    MAX_ESCALATION_ACTIONS,
    MAX_POLICY_NAME,
    AddTag,
    EscalationAction,
    Notify,
    ReassignTo,
    SlaPolicy,
)
from services.router.slas.models import SlaConfigVersion
from services.router.slas.recheck import differs, moves_clocks, recheck_clocks_on
from services.router.slas.schemas import StoredPolicy
from services.router.slas.tracking import SlaConfig, compile_condition_set
from services.router.teams.states import team_problem, team_states
from services.router.writeback.models import WritebackTarget
from shared.db.audit import record
from shared.events import utc_now
from shared.http.preconditions import Stale, etag
from shared.http.problems import field_errors

log = logging.getLogger(__name__)

MODELS: dict[str, type[BaseModel]] = {"policy": StoredPolicy, "calendar": BusinessCalendar}


def etag_prefix(kind: str, name: str) -> str:
    """``sla-policy-<name>``, like ``team-<name>``. Unlike team names, SLA names are free text:
    percent-encoding keeps quotes, commas, spaces and non-ASCII out of the header."""
    return f"sla-{kind}-{quote(name, safe='')}"


def config_etag(row: SlaConfigVersion) -> str:
    return etag(etag_prefix(row.kind, row.name), row.version)


class ConfigInvalid(ValueError):
    """Validation failure; ``errors`` are ``{"field": "/json/pointer", "message": ...}``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


ESCALATIONS = ("on_warning", "on_breach")
# raise_priority, reassign_to, ...: the ``action`` tag of each member of the union
_ACTION_TAGS = frozenset(m.model_fields["action"].default for m in get_args(get_args(EscalationAction)[0]))


def _pointer_errors(
    exc: ValidationError, prefix: str = "", document: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """``document``: a calendar's, whose shorthands (day ranges, single intervals, dates) the
    errors are pointed back into."""
    hours = weekly_hours_origins(document.get("weekly_hours")) if document is not None else {}
    holidays = document.get("holidays") if document is not None else None
    errors = []
    for error in exc.errors():
        loc = list(error["loc"])
        # The action union puts its tag in the location (on_breach.0.reassign_to.team): drop it,
        # so that the pointer points into the document.
        if len(loc) > 2 and loc[0] in ESCALATIONS and isinstance(loc[1], int) and loc[2] in _ACTION_TAGS:
            del loc[2]
        if loc and loc[-1] == "[key]":  # pydantic's marker of a bad key (targets.p1): the key names it
            del loc[-1]
        if (
            len(loc) > 2
            and loc[0] == "weekly_hours"
            and isinstance(loc[1], str)
            and isinstance(loc[2], int)
            and (origin := hours.get((loc[1], loc[2])))
        ):
            loc[1:3] = origin  # mon-fri's interval, not mon's, tue's, ...
        if (
            len(loc) == 3
            and loc[0] == "holidays"
            and loc[2] == "day"
            and isinstance(holidays, list)
            and isinstance(loc[1], int)
            and loc[1] < len(holidays)
            and isinstance(holidays[loc[1]], str)
        ):
            del loc[2]  # given as a date alone
        errors.append({**error, "loc": tuple(loc)})
    found = [{"field": prefix + e["field"], "message": e["message"]} for e in field_errors(errors)]
    return [dict(t) for t in dict.fromkeys(tuple(e.items()) for e in found)]  # one per field and message


class LiveCalendars(dict[str, BusinessCalendar]):
    """The live calendars by name, and the live policies: what validation on save checks a
    policy's targets and a calendar's hours against. ``in`` tells a live calendar's name, also of
    one whose stored document no longer validates (it has no model here, and is not checked).

    ``policy_names``: every live policy's name, also of one that no longer validates (saving it
    again is no new name); ``notify_targets``: the write-back targets a ``notify`` may name."""

    def __init__(
        self,
        calendars: Mapping[str, BusinessCalendar],
        policies: Sequence[StoredPolicy] = (),
        unreadable: AbstractSet[str] = frozenset(),
        *,
        policy_names: AbstractSet[str] = frozenset(),
        notify_targets: AbstractSet[str] = frozenset(),
    ) -> None:
        super().__init__(calendars)
        self.policies = list(policies)
        self.unreadable = frozenset(unreadable)
        self.policy_names = frozenset(policy_names) | {p.name for p in self.policies}
        self.notify_targets = frozenset(notify_targets)

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or name in self.unreadable

    def is_live(self, kind: str, name: str) -> bool:
        return name in (self if kind == "calendar" else self.policy_names)


# As team and rule names: no leading or trailing whitespace, so "gold" and "gold " are not two.
_TRIMMED_NAME = re.compile(r"\S(.*\S)?")
_INVISIBLE = frozenset({"Cc", "Cf"})  # control and format characters (U+200B, U+202E...)


def name_errors(kind: str, name: str, calendars: LiveCalendars) -> list[dict[str, Any]]:
    """Why ``name`` cannot be saved. Only new names are held to today's rules: a policy or
    calendar stored earlier under a longer or untrimmed name can still be saved again, as the
    routers still load it (the document models allow those names)."""
    if kind == "calendar" and name == ALWAYS_OPEN:
        message = f"{ALWAYS_OPEN!r} is the built-in always-open calendar of policies without one"
        return [{"field": "/name", "message": f"{message}; choose another name"}]
    if calendars.is_live(kind, name):
        return []
    errors = []
    # No two names may look alike: "gold" and "gold ", "café" composed and decomposed, "gold" with
    # a zero-width space or a bidi override would be two policies no one can tell apart.
    if not _TRIMMED_NAME.fullmatch(name):
        errors.append({"field": "/name", "message": "must not start or end with whitespace"})
    elif unicodedata.normalize("NFC", name) != name:
        errors.append({"field": "/name", "message": "must be in Unicode normal form NFC"})
    elif any(unicodedata.category(char) in _INVISIBLE for char in name):
        errors.append({"field": "/name", "message": "must not hold control or format characters"})
    # The URL /v1/sla/<kind>s/<name> must reach it: the server decodes %2F before routing, and
    # clients drop "." and ".." segments, so such a name (saved by `ticketctl sla apply`) could
    # never be read, changed or deleted over the API ("gold/versions" read gold's history).
    if "/" in name or name in (".", ".."):
        errors.append({"field": "/name", "message": "must not hold '/' nor be '.' or '..'"})
    if kind == "policy" and len(name) > MAX_POLICY_NAME:
        message = f"at most {MAX_POLICY_NAME} characters, as a rule's actions.sla_policy names it"
        errors.append({"field": "/name", "message": message})
    return errors


def _minutes(value: timedelta) -> str:
    return f"{value // timedelta(minutes=1)} min"


def _hours(value: timedelta) -> str:
    return f"{value / timedelta(hours=1):g} h"


def _targets(policy: SlaPolicy) -> list[tuple[str, timedelta]]:
    """``(JSON pointer, target)`` of each target the policy sets."""
    return [
        (f"/targets/{priority.value}/{field}", value)
        for priority, targets in policy.targets.items()
        for field in ("first_response", "resolution")
        if (value := getattr(targets, field)) is not None
    ]


def horizon_errors(
    policy: SlaPolicy, calendar: BusinessCalendar | None, now: datetime
) -> list[dict[str, Any]]:
    """Targets whose deadline, from some instant of the week from ``now``, lies beyond the deadline
    horizon of ``calendar`` (``None``: always open, where a year's target fits).

    Past the horizon the routers would cap each such deadline (see ``add_business_time``). Counted
    from the week, not from ``now`` alone, so that the answer does not depend on the weekday (or
    time of day) of the save: see ``least_open_time_within_horizon``."""
    targets = _targets(policy)
    if calendar is None or not targets:
        return []
    years, open_time = DEADLINE_HORIZON_YEARS, least_open_time_within_horizon(calendar, now)
    if open_time <= timedelta(0):
        return [
            {
                "field": "/calendar",
                "message": f"business calendar {calendar.name!r} has no open time in the {years} years "
                "from some time this week",
            }
        ]
    return [
        {
            "field": pointer,
            "message": f"{_minutes(target)} of business time end more than {years} years after they "
            f"start on business calendar {calendar.name!r}, which is open {_hours(open_time)} in the "
            f"{years} years from some time this week; shorten the target or open the calendar longer",
        }
        for pointer, target in targets
        if target > open_time
    ]


def _calendar_horizon_errors(
    calendar: BusinessCalendar,
    previous: BusinessCalendar | None,
    policies: Sequence[SlaPolicy],
    now: datetime,
) -> list[dict[str, Any]]:
    """The calendar must have open time, and enough for the targets of the policies on it that
    ``previous`` (its live version) has enough for: a policy stored before this check, already left
    out of the routers' configuration, names itself when saved and does not block the calendar."""
    years, open_time = DEADLINE_HORIZON_YEARS, least_open_time_within_horizon(calendar, now)
    at_fault = "/holidays" if calendar.holidays else "/weekly_hours"
    if open_time <= timedelta(0):
        return [{"field": at_fault, "message": f"no open time in the {years} years from some time this week"}]
    too_long = [
        (policy.name, pointer, target)
        for policy in policies
        if policy.calendar == calendar.name
        for pointer, target in _targets(policy)
        if target > open_time
    ]
    if too_long and previous is not None:
        had = least_open_time_within_horizon(previous, now)
        too_long = [(policy, pointer, target) for policy, pointer, target in too_long if target <= had]
    if not too_long:
        return []
    if calendar.holidays:  # the holidays are at fault when the hours alone would do
        hours_only = BusinessCalendar.model_validate(calendar.model_dump(exclude={"holidays"}))
        enough = least_open_time_within_horizon(hours_only, now)
        at_fault = "/holidays" if all(target <= enough for _, _, target in too_long) else "/weekly_hours"
    listed = ", ".join(f"{name!r} {pointer} ({_minutes(target)})" for name, pointer, target in too_long)
    return [
        {
            "field": at_fault,
            "message": f"open {_hours(open_time)} in the {years} years from some time this week, too "
            f"little for the targets of the SLA policies on this calendar (each must end within {years} "
            f"years): {listed}",
        }
    ]


def _calendar_size_errors(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Bounds on what every save check and every router walks; checked here, not in the model, so
    that a calendar stored before them still loads. Counted on the document, before a calendar is
    built from it: 250,000 intervals under "daily" took 27 s of the event loop to build."""
    fields: dict[str, None] = {}
    for day, keys in intervals_by_key(document.get("weekly_hours")).items():
        if sum(keys.values()) > MAX_DAY_INTERVALS:
            # The key that gives them all ("daily"), else the day that several keys add up on.
            fields[f"/weekly_hours/{next(iter(keys)) if len(keys) == 1 else day}"] = None
    errors = [{"field": field, "message": f"at most {MAX_DAY_INTERVALS} intervals a day"} for field in fields]
    holidays = document.get("holidays")
    if isinstance(holidays, list) and len(holidays) > MAX_HOLIDAYS:
        message = f"at most {MAX_HOLIDAYS} holidays, got {len(holidays)}"
        errors.append({"field": "/holidays", "message": message})
    return errors


def _policy_size_errors(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """As :func:`_calendar_size_errors`, for a policy's escalation actions."""
    return [
        {"field": f"/{key}", "message": f"at most {MAX_ESCALATION_ACTIONS} actions"}
        for key in ESCALATIONS
        if isinstance(actions := document.get(key), list) and len(actions) > MAX_ESCALATION_ACTIONS
    ]


def validate_document(
    kind: str,
    name: str,
    document: dict[str, Any],
    calendars: LiveCalendars,
    teams: Mapping[str, bool],
    *,
    now: datetime | None = None,
) -> BaseModel:
    """Parse ``document`` (its ``name`` defaults to ``name``); errors name the field at fault.

    ``calendars``: the live calendars and policies (:func:`live_calendars`); ``teams``: every
    team's name -> active, as the rules check theirs (a reassignment to a missing team would fail
    or misroute at escalation); a ``notify`` must name a write-back target (``calendars``). A new
    name is checked too (:func:`name_errors`). A policy's targets
    must end within the deadline horizon of its calendar from ``now`` (default: the current time),
    and a calendar must have open time, enough for the live policies on it."""
    now = now or utc_now()
    document = {**document, "name": document.get("name", name)}
    if document["name"] != name:
        raise ConfigInvalid([{"field": "/name", "message": f"must equal the name in the URL ({name!r})"}])
    if errors := name_errors(kind, name, calendars):
        raise ConfigInvalid(errors)
    if kind == "calendar" and (too_many := _calendar_size_errors(document)):
        raise ConfigInvalid(too_many)
    if kind == "policy" and (too_many := _policy_size_errors(document)):
        raise ConfigInvalid(too_many)
    try:
        model = MODELS[kind].model_validate(document)
    except ValidationError as exc:
        raise ConfigInvalid(_pointer_errors(exc, document=document if kind == "calendar" else None)) from None
    if isinstance(model, StoredPolicy):
        errors = []
        if model.calendar != ALWAYS_OPEN and model.calendar not in calendars:
            errors.append({"field": "/calendar", "message": f"unknown business calendar {model.calendar!r}"})
        elif model.calendar in calendars.unreadable:  # the routers leave its policies out (load_config)
            message = f"business calendar {model.calendar!r} no longer validates; save it again first"
            errors.append({"field": "/calendar", "message": message})
        if model.applies_when is not None:
            try:
                compile_condition_set(name, model.applies_when)
            except ValidationError as exc:
                errors += _pointer_errors(exc, "/applies_when")
            except ValueError as exc:
                errors.append({"field": "/applies_when", "message": str(exc)})
        for key in ESCALATIONS:
            for index, action in enumerate(getattr(model, key)):
                problem = team_problem(teams, action.team) if isinstance(action, ReassignTo) else None
                if problem is not None:
                    errors.append({"field": f"/{key}/{index}/team", "message": f"{problem} {action.team!r}"})
                if isinstance(action, AddTag) and not action.tag.strip():
                    errors.append({"field": f"/{key}/{index}/tag", "message": "must not be blank"})
                if isinstance(action, Notify) and action.target not in calendars.notify_targets:
                    message = f"unknown write-back target {action.target!r}"
                    errors.append({"field": f"/{key}/{index}/target", "message": message})
        errors += horizon_errors(model, calendars.get(model.calendar), now)
        if errors:
            raise ConfigInvalid(errors)
    if isinstance(model, BusinessCalendar):
        try:
            check_new_timezone(model.timezone)
        except ValueError as exc:
            raise ConfigInvalid([{"field": "/timezone", "message": str(exc)}]) from None
        errors = _calendar_horizon_errors(model, calendars.get(name), calendars.policies, now)
        if errors:
            raise ConfigInvalid(errors)
    return model


def render_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    if old is None and new is None:
        return "no changes"
    if old is None:
        return "created"
    if new is None:
        return "deleted"
    lines = []
    for key in sorted(set(old) | set(new)):
        if differs(key, old.get(key), new.get(key)):
            before, after = json.dumps(old.get(key), sort_keys=True), json.dumps(new.get(key), sort_keys=True)
            lines.append(f"~ {key}: {before} -> {after}")
    return "\n".join(lines) or "no changes"


async def latest(session: AsyncSession, kind: str, name: str) -> SlaConfigVersion | None:
    return await session.scalar(
        select(SlaConfigVersion)
        .where(SlaConfigVersion.kind == kind, SlaConfigVersion.name == name)
        .order_by(SlaConfigVersion.version.desc())
        .limit(1)
    )


def newest_versions(kind: str) -> Select[SlaConfigVersion]:
    """The newest version of each name of ``kind``, deletions included."""
    newest = (
        select(SlaConfigVersion.name, func.max(SlaConfigVersion.version).label("v"))
        .where(SlaConfigVersion.kind == kind)
        .group_by(SlaConfigVersion.name)
        .subquery()
    )
    return (
        select(SlaConfigVersion)
        .join(newest, (SlaConfigVersion.name == newest.c.name) & (SlaConfigVersion.version == newest.c.v))
        # The join alone would also match another kind's row of the same name and version.
        .where(SlaConfigVersion.kind == kind)
    )


async def live_rows(session: AsyncSession, kind: str) -> list[SlaConfigVersion]:
    rows = await session.scalars(
        newest_versions(kind).where(SlaConfigVersion.deleted.is_(False)).order_by(SlaConfigVersion.name)
    )
    return list(rows.all())


async def history(session: AsyncSession, kind: str, name: str) -> Sequence[SlaConfigVersion]:
    return (
        await session.scalars(
            select(SlaConfigVersion)
            .where(SlaConfigVersion.kind == kind, SlaConfigVersion.name == name)
            .order_by(SlaConfigVersion.version)
        )
    ).all()


async def history_page(
    session: AsyncSession, kind: str, name: str, limit: int, before: int | None
) -> Sequence[SlaConfigVersion]:
    """A page of the history, newest first: the versions below ``before``."""
    query = (
        select(SlaConfigVersion)
        .where(SlaConfigVersion.kind == kind, SlaConfigVersion.name == name)
        .order_by(SlaConfigVersion.version.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(SlaConfigVersion.version < before)
    return (await session.scalars(query)).all()


async def begin_change(session: AsyncSession, kind: str, name: str) -> SlaConfigVersion | None:
    """The start of every change (save or delete): take the configuration lock, then read the
    newest version (``previous`` of :func:`save`), so the checks that follow see what concurrent
    rule-set and team writers committed."""
    await lock_config(session)
    return await latest(session, kind, name)


async def save(
    session: AsyncSession,
    kind: str,
    name: str,
    document: dict[str, Any] | None,
    author: str,
    comment: str = "",
    *,
    previous: SlaConfigVersion | None,
) -> SlaConfigVersion:
    """Append the version after ``previous`` (``document=None``: a deletion).

    ``previous`` is the version the caller read and checked against If-Match; numbering from it
    (not from a fresh read) lets the UNIQUE (kind, name, version) constraint reject a writer that
    committed in between, which READ COMMITTED would otherwise let us silently save on top of.
    Callers that validate start with :func:`begin_change`."""
    await lock_config(session)  # for callers that validate nothing (seeding); else held already
    old = None if previous is None or previous.deleted else previous.document
    row = SlaConfigVersion(
        kind=kind,
        name=name,
        version=(previous.version if previous is not None else 0) + 1,
        document=document if document is not None else (old or {}),
        deleted=document is None,
        author=author,
        comment=comment,
        diff=render_diff(old, document),
        created_at=utc_now(),
    )
    session.add(row)
    # In the audit log beside the teams' and rule sets' changes, committed with the version.
    action = "delete" if document is None else "create" if old is None else "update"
    record(
        session,
        author,
        f"sla_{kind}.{action}",
        f"sla_{kind}",
        name,
        {"version": row.version, "comment": comment, "diff": row.diff},
    )
    number = row.version  # read before the flush: a failed one leaves the row unusable
    try:
        await session.flush()
    except IntegrityError as exc:  # another writer saved this version number first
        raise Stale(
            etag(etag_prefix(kind, name), number),
            f"version {number} was saved concurrently; re-read and retry",
        ) from exc
    if moves_clocks(kind, old, document):
        # Committed with the version: the open tickets on it are recomputed by the next scan, the
        # time before the edit counted on the calendar as it was.
        await recheck_clocks_on(session, kind, name, row.created_at, _calendar_or_none(kind, old))
    return row


def _calendar_or_none(kind: str, document: dict[str, Any] | None) -> BusinessCalendar | None:
    """``document`` as a calendar, when it is a readable one."""
    if kind != "calendar" or document is None:
        return None
    try:
        return BusinessCalendar.model_validate(document)
    except ValidationError:
        return None


async def save_checked(
    session: AsyncSession, kind: str, name: str, document: dict[str, Any], author: str, comment: str = ""
) -> SlaConfigVersion:
    """Check ``document`` against the live configuration and teams, as an API save does, and store
    it as ``name``'s next version: the way in for callers without an ``If-Match`` (the demo seed;
    the CLI composes the same steps with its base version). Raises :class:`ConfigInvalid`."""
    # Lock first: the checks must see what concurrent writers committed.
    previous = await begin_change(session, kind, name)
    checked = await checked_document(session, kind, name, document)
    return await save(session, kind, name, checked, author, comment, previous=previous)


async def checked_document(
    session: AsyncSession, kind: str, name: str, document: dict[str, Any]
) -> dict[str, Any]:
    """``document`` as it would be stored, once valid against the live calendars and teams."""
    calendars, teams = await live_calendars(session), await team_states(session)
    return validate_document(kind, name, document, calendars, teams).model_dump(mode="json")


def version_of(row: SlaConfigVersion | None) -> int:
    """The number the next version is counted from (a deletion is a version too; 0: none yet)."""
    return row.version if row is not None else 0


def check_base_version(kind: str, name: str, live: SlaConfigVersion | None, base_version: int | None) -> None:
    """Raise :class:`Stale` when ``base_version`` is given and ``live`` is another version."""
    current = version_of(live)
    if base_version is not None and base_version != current:
        raise Stale(
            etag(etag_prefix(kind, name), current),
            f"{kind} {name} is at version {current}, not {base_version}: it changed since that was read",
        )


async def live_calendars(session: AsyncSession) -> LiveCalendars:
    """The live calendars, with the live policies and the write-back targets, for
    :func:`validate_document`."""
    calendars, unreadable, policies = {}, set(), []
    for row in await live_rows(session, "calendar"):
        try:
            calendars[row.name] = BusinessCalendar.model_validate(row.document)
        except ValidationError:
            unreadable.add(row.name)  # stored by an earlier version: saving it again fixes it
    policy_rows = await live_rows(session, "policy")
    for row in policy_rows:
        try:
            policies.append(StoredPolicy.model_validate(row.document))
        except ValidationError:
            continue  # left out of the routers' configuration too (see load_config)
    targets = (await session.scalars(select(WritebackTarget.name))).all()
    return LiveCalendars(
        calendars,
        policies,
        unreadable,
        policy_names={row.name for row in policy_rows},
        notify_targets=set(targets),
    )


async def policies_reassigning_to(session: AsyncSession, team: str) -> list[str]:
    """Names of the live policies whose escalations reassign to ``team``."""
    return await _policies_with(session, "reassign_to", "team", team)


async def policies_notifying(session: AsyncSession, target: str) -> list[str]:
    """Names of the live policies whose escalations notify the write-back target ``target``."""
    return await _policies_with(session, "notify", "target", target)


async def _policies_with(session: AsyncSession, kind: str, key: str, value: str) -> list[str]:
    return [
        row.name
        for row in await live_rows(session, "policy")
        if any(
            isinstance(action, dict) and action.get("action") == kind and action.get(key) == value
            for escalation in ESCALATIONS
            for action in row.document.get(escalation) or ()
        )
    ]


async def config_version(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(SlaConfigVersion.id))) or 0)


async def load_config(session: AsyncSession) -> SlaConfig:
    version = await config_version(session)
    calendars: dict[str, BusinessCalendar] = {}
    unreadable: set[str] = set()
    for row in await live_rows(session, "calendar"):
        try:
            calendars[row.name] = BusinessCalendar.model_validate(row.document)
        except ValidationError as exc:
            # Saved under looser checks, or its zone gone from the system's time zone database
            # (Debian moved US/Eastern and the like to tzdata-legacy): as for a policy, failing here
            # would stop every router. Left out, with the policies on it, until it is saved again.
            unreadable.add(row.name)
            log.error(
                "stored business calendar is invalid and not applied, nor the SLA policies on it; "
                "save it again to fix it",
                extra={"calendar": row.name, "version": row.version, "errors": field_errors(exc.errors())},
            )
    policies = []
    left_out: set[str] = set()  # live but invalid: see SlaConfig.left_out
    # Targets beyond the deadline horizon of their calendar (saved before the API checked them)
    # are not re-checked here: the horizon's open time depends on the weekday it is counted from,
    # so a router reloading on another day could drop a policy the API accepted; the routers cap
    # such deadlines anyway (add_business_time).
    for row in await live_rows(session, "policy"):
        on = row.document.get("calendar")
        if isinstance(on, str) and on in unreadable:
            left_out.add(row.name)  # its clocks are kept, on the always-open stand-in (SlaConfig)
            continue
        try:
            policy = StoredPolicy.model_validate(row.document)
            if policy.applies_when is not None:  # SlaConfig compiles it: a rule engine's checks
                compile_condition_set(policy.name, policy.applies_when, stored=True)
        except ValueError as exc:  # pydantic's ValidationError too
            # Saved under looser checks by an earlier version (a target over a year, a condition on
            # a field the rule engine no longer has, say). Failing here would stop every router,
            # and the admin API with them, so the policy is left out until it is saved again (the
            # API refuses it with the field at fault). Named in the configuration, so that the
            # clocks running on it are kept meanwhile (SlaTracker).
            left_out.add(row.name)
            errors = field_errors(exc.errors()) if isinstance(exc, ValidationError) else [str(exc)]
            log.error(
                "stored SLA policy is invalid and not applied; save it again to fix it",
                extra={"policy": row.name, "version": row.version, "errors": errors},
            )
            continue
        policies.append(policy)
    policies.sort(key=lambda p: (p.rank, p.name))
    return SlaConfig(policies=policies, calendars=calendars, version=version, left_out=frozenset(left_out))
