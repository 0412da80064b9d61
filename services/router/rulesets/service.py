"""Changing the rules: every change is validated (schema, team and SLA policy references), saved
as a new version with author, comment and diff, and audited in the same transaction.

Used by the REST API and by ``ticketctl rules``. Optimistic concurrency: callers pass the
version they edited (``expected``); the version number is the table's primary key, so of two
concurrent saves of version N+1 exactly one commits and the other gets :class:`Stale`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.config_lock import lock_config
from services.router.errors import Conflict, Invalid, NotFound, get_or_404
from services.router.models import RuleSetVersion
from services.router.rules import Rule, RuleSet, diff_rulesets
from services.router.rulesets.sla_references import policy_problem, policy_references, policy_states
from services.router.rulesets.store import latest, ruleset_of, save_version
from services.router.sla.calendar import check_new_timezone
from services.router.teams.states import team_problem, team_states
from shared.db.audit import record
from shared.http.preconditions import Expected, Stale, check_expected, etag
from shared.http.problems import field_errors

RESERVED_RULE_IDS = frozenset({"versions"})  # /v1/rules/versions is the history, not a rule


@dataclass(frozen=True)
class Edit:
    """Who changes the rule set, from which version, and why.

    ``expected`` is the version the author edited (the REST API's If-Match; None: whatever is
    live), checked before anything else; ``comment`` is stored with the version and audited."""

    expected: Expected
    author: str
    comment: str = ""


def ruleset_etag(version: int) -> str:
    return etag("ruleset", version)


async def live(session: AsyncSession) -> RuleSet:
    """The newest version (``version`` 0 and no rules when nothing was ever saved)."""
    row = await latest(session)
    return ruleset_of(row) if row is not None else RuleSet(version=0)


async def get_version(session: AsyncSession, version: int) -> RuleSetVersion:
    return await get_or_404(session, RuleSetVersion, version, f"rule set version {version}")


async def list_versions(
    session: AsyncSession, limit: int = 50, before: int | None = None
) -> list[RuleSetVersion]:
    query = select(RuleSetVersion).order_by(RuleSetVersion.version.desc()).limit(limit)
    if before is not None:
        query = query.where(RuleSetVersion.version < before)
    return list((await session.scalars(query)).all())


def validated(data: dict[str, Any]) -> RuleSet:
    """A rule set from plain data, with JSON-pointer errors (``/rules/3/when/op``)."""
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        for error in errors:
            error["message"] = error["message"].removeprefix("Value error, ")
        raise Invalid("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors) from exc


def team_references(ruleset: RuleSet) -> dict[str, list[tuple[str, str]]]:
    """team -> [(JSON pointer, rule id or 'default_team')] for every place the rules name it."""
    refs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for index, rule in enumerate(ruleset.rules):
        actions = rule.actions
        if actions.assign_team is not None:
            refs[actions.assign_team].append((f"/rules/{index}/actions/assign_team", rule.id))
        if actions.assign_pool is not None:
            for position, team in enumerate(actions.assign_pool.teams):
                refs[team].append((f"/rules/{index}/actions/assign_pool/teams/{position}", rule.id))
    if ruleset.default_team is not None:
        refs[ruleset.default_team].append(("/default_team", "default_team"))
    return refs


async def check_references(session: AsyncSession, ruleset: RuleSet) -> list[dict[str, Any]]:
    """Errors for unknown or inactive teams, unknown or deleted SLA policies and reserved rule
    ids; empty when the set is saveable."""
    teams = await team_states(session)
    errors: list[dict[str, Any]] = []
    for team, places in team_references(ruleset).items():
        problem = team_problem(teams, team)
        if problem is None:
            continue
        for pointer, rule_id in places:
            who = "default_team" if rule_id == "default_team" else f"rule {rule_id!r}"
            errors.append({"field": pointer, "message": f"{who}: {problem} {team!r}"})
    named = policy_references(ruleset)
    policies = await policy_states(session) if named else {}
    for policy, places in named.items():
        problem = policy_problem(policies, policy)
        if problem is not None:
            errors += [{"field": p, "message": f"rule {r!r}: {problem} {policy!r}"} for p, r in places]
    for index, rule in enumerate(ruleset.rules):
        if rule.id in RESERVED_RULE_IDS:
            errors.append({"field": f"/rules/{index}/id", "message": f"rule id {rule.id!r} is reserved"})
    zones = [("/timezone", ruleset.timezone)]
    zones += [(f"/rules/{i}/timezone", r.timezone) for i, r in enumerate(ruleset.rules) if r.timezone]
    for pointer, zone in zones:
        try:
            check_new_timezone(zone)
        except ValueError as exc:
            errors.append({"field": pointer, "message": str(exc)})
    return sorted(errors, key=lambda e: e["field"])


async def save(
    session: AsyncSession, ruleset: RuleSet, edit: Edit, *, action: str, detail: dict[str, Any] | None = None
) -> RuleSet:
    """Validate and store ``ruleset`` as the next version of the one ``edit`` expects."""
    current = await _base(session, edit.expected)
    assert current.version is not None
    errors = await check_references(session, ruleset)
    if errors:
        raise Invalid("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors)
    change = diff_rulesets(current, ruleset)
    try:
        row = await save_version(
            session, ruleset.model_copy(update={"version": None}), edit.author, edit.comment, base=current
        )
    except IntegrityError as exc:
        # Another writer committed version N+1 between our read and our insert.
        number = current.version + 1
        raise Stale(
            ruleset_etag(number), f"version {number} was saved concurrently; re-read and retry"
        ) from exc
    record(
        session,
        edit.author,
        action,
        "ruleset",
        str(row.version),
        {
            "version": row.version,
            "previous_version": current.version,
            "comment": edit.comment,
            "diff": change.to_dict(),
            **(detail or {}),
        },
    )
    return ruleset_of(row)


async def _base(session: AsyncSession, expected: Expected) -> RuleSet:
    """The live set, after checking the caller edited this version (before any other check).

    The first read of every change: it takes the configuration lock, so the checks that follow
    see what concurrent team and SLA writers committed (no-op when this transaction holds it)."""
    await lock_config(session)
    current = await live(session)
    assert current.version is not None
    check_expected(expected, current.version, ruleset_etag(current.version))
    return current


def _index(ruleset: RuleSet, rule_id: str) -> int:
    for index, rule in enumerate(ruleset.rules):
        if rule.id == rule_id:
            return index
    raise NotFound(f"no rule {rule_id!r} in version {ruleset.version}")


def _check_position(position: int | None, size: int) -> int:
    if position is None:
        return size
    if not 0 <= position <= size:
        raise Invalid(
            f"position must be between 0 and {size}",
            [{"field": "/query/position", "message": f"must be between 0 and {size}"}],
        )
    return position


async def _save_rule(
    session: AsyncSession, ruleset: RuleSet, index: int, edit: Edit, *, action: str, detail: dict[str, Any]
) -> RuleSet:
    """:func:`save` for the endpoints whose body is one rule (at ``index`` of ``ruleset``): an error
    in it points into that body (``/actions/assign_team``), as its schema errors do, rather than at
    its place in the whole set (``/rules/4/actions/assign_team``), which the client never sent."""
    try:
        return await save(session, ruleset, edit, action=action, detail=detail)
    except Invalid as exc:
        prefix = f"/rules/{index}"
        errors = [
            {**e, "field": e["field"].removeprefix(prefix) or "/"}
            if e["field"] == prefix or e["field"].startswith(prefix + "/")
            else e
            for e in exc.errors
        ]
        raise Invalid("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors) from exc


def _with_rules(ruleset: RuleSet, rules: list[Rule]) -> RuleSet:
    data = ruleset.model_dump(mode="json", by_alias=True, exclude={"version"}, exclude_none=True)
    data["rules"] = [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in rules]
    return validated(data)


async def replace_ruleset(session: AsyncSession, ruleset: RuleSet, edit: Edit) -> RuleSet:
    return await save(session, ruleset, edit, action="ruleset.replace")


async def add_rule(session: AsyncSession, rule: Rule, position: int | None, edit: Edit) -> RuleSet:
    current = await _base(session, edit.expected)
    if any(r.id == rule.id for r in current.rules):
        raise Conflict(
            f"a rule with id {rule.id!r} exists", [{"field": "/id", "message": "duplicate rule id"}]
        )
    rules = list(current.rules)
    index = _check_position(position, len(rules))
    rules.insert(index, rule)
    return await _save_rule(
        session, _with_rules(current, rules), index, edit, action="rule.create", detail={"rule_id": rule.id}
    )


async def replace_rule(session: AsyncSession, rule_id: str, rule: Rule, edit: Edit) -> RuleSet:
    current = await _base(session, edit.expected)
    index = _index(current, rule_id)
    if rule.id != rule_id and any(r.id == rule.id for r in current.rules):
        raise Conflict(
            f"a rule with id {rule.id!r} exists", [{"field": "/id", "message": "duplicate rule id"}]
        )
    rules = list(current.rules)
    rules[index] = rule
    return await _save_rule(
        session, _with_rules(current, rules), index, edit, action="rule.update", detail={"rule_id": rule_id}
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, null removes a key."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


async def patch_rule(session: AsyncSession, rule_id: str, patch: dict[str, Any], edit: Edit) -> RuleSet:
    current = await _base(session, edit.expected)
    index = _index(current, rule_id)
    if "id" in patch and patch["id"] != rule_id:
        raise Invalid(
            "a rule's id cannot be patched; PUT the rule instead",
            [{"field": "/id", "message": "cannot change"}],
        )
    merged = merge_patch(
        current.rules[index].model_dump(mode="json", by_alias=True, exclude_none=True), patch
    )
    try:
        rule = Rule.model_validate(merged)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        raise Invalid("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors) from exc
    rules = list(current.rules)
    rules[index] = rule
    return await _save_rule(
        session,
        _with_rules(current, rules),
        index,
        edit,
        action="rule.update",
        detail={"rule_id": rule_id, "patch": patch},
    )


async def delete_rule(session: AsyncSession, rule_id: str, edit: Edit) -> RuleSet:
    current = await _base(session, edit.expected)
    index = _index(current, rule_id)
    rules = [r for i, r in enumerate(current.rules) if i != index]
    return await save(
        session,
        _with_rules(current, rules),
        edit,
        action="rule.delete",
        detail={"rule_id": rule_id},
    )


async def move_rule(session: AsyncSession, rule_id: str, position: int, edit: Edit) -> RuleSet:
    current = await _base(session, edit.expected)
    index = _index(current, rule_id)
    rules = list(current.rules)
    rule = rules.pop(index)
    rules.insert(_check_position(position, len(rules)), rule)
    return await save(
        session,
        _with_rules(current, rules),
        edit,
        action="rule.move",
        detail={"rule_id": rule_id, "from": index, "to": position},
    )


async def rollback(session: AsyncSession, version: int, edit: Edit) -> RuleSet:
    """A new version equal to ``version`` (history is never rewritten)."""
    await _base(session, edit.expected)
    target = ruleset_of(await get_version(session, version))
    return await save(
        session,
        target,
        replace(edit, comment=edit.comment or f"rollback to version {version}"),
        action="ruleset.rollback",
        detail={"rollback_to": version},
    )
