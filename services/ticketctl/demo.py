"""The small demo configuration ``make run`` seeds into an empty database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.config_lock import lock_config
from services.router.models import Team
from services.router.rules import RuleSet
from services.router.rulesets.store import save_version
from services.router.slas import service as sla_service

DEMO_TEAMS = [
    Team(
        name="service-desk",
        description="First line: everything nobody else claims",
        capacity=40,
        skills=["general"],
        languages=["en", "de", "et"],
    ),
    Team(
        name="access",
        description="Accounts, passwords, VPN and permissions",
        capacity=25,
        skills=["identity", "vpn"],
        languages=["en", "de"],
    ),
    Team(
        name="hardware",
        description="Laptops, monitors, printers and phones",
        capacity=25,
        skills=["hardware"],
        languages=["en"],
    ),
    Team(
        name="hr-support",
        description="Payroll, leave and onboarding",
        capacity=15,
        skills=["hr"],
        languages=["en", "et"],
    ),
]

DEMO_RULES = {
    "default_team": "service-desk",
    "timezone": "UTC",
    "rules": [
        {
            "id": "outage-p1",
            "name": "Outages are P1",
            "when": {
                "field": "text",
                "op": "matches",
                "value": r"\b(outage|down for everyone|production down)\b",
            },
            "actions": {"set_priority": "P1", "add_tags": ["outage"], "stop": False},
        },
        {
            "id": "access",
            "name": "Access and passwords",
            "when": {
                "any": [
                    {
                        "field": "text",
                        "op": "matches",
                        "value": r"\b(password|log ?in|vpn|access|account|mfa)\b",
                    },
                    {"field": "tags", "op": "contains", "value": "access"},
                ]
            },
            "actions": {"assign_team": "access"},
        },
        {
            "id": "hardware",
            "name": "Hardware",
            "when": {
                "field": "text",
                "op": "matches",
                "value": r"\b(laptop|monitor|printer|keyboard|phone|dock)\b",
            },
            "actions": {"assign_team": "hardware"},
        },
        {
            "id": "hr",
            "name": "HR topics",
            "when": {
                "any": [
                    {"field": "tags", "op": "in", "value": ["hr", "payroll"]},
                    {"field": "text", "op": "matches", "value": r"\b(payroll|salary|vacation|onboarding)\b"},
                ]
            },
            "actions": {"assign_team": "hr-support"},
        },
    ],
}


# Deadlines for every demo ticket, on the built-in always-open calendar (business minutes), so that
# the ticket API, the SLA metrics and the escalation scanner have something to show from the first
# ticket on. A breach raises the priority one step.
DEMO_SLA_POLICY: dict[str, Any] = {
    "name": "standard",
    "targets": {
        "P1": {"first_response": 15, "resolution": 240},
        "P2": {"first_response": 60, "resolution": 480},
        "P3": {"first_response": 240, "resolution": 1440},
        "P4": {"first_response": 480, "resolution": 4320},
    },
    "on_breach": [{"action": "raise_priority"}],
}

AUTHOR = "make run (demo seed)"


async def seed_demo(session: AsyncSession, *, sla: bool = True) -> bool:
    """Insert the demo teams and rules, and with ``sla`` the demo SLA policy, when no team exists
    yet; True when it seeded."""
    await lock_config(session)  # a configuration write: before its "no team yet" check
    if await session.scalar(select(func.count()).select_from(Team)):
        return False
    session.add_all(
        Team(**{c: getattr(t, c) for c in ("name", "description", "capacity", "skills", "languages")})
        for t in DEMO_TEAMS
    )
    await save_version(
        session, RuleSet.model_validate(DEMO_RULES), author=AUTHOR, comment="demo configuration"
    )
    if sla:  # through the checks an API save passes
        name = DEMO_SLA_POLICY["name"]
        await sla_service.save_checked(session, "policy", name, DEMO_SLA_POLICY, AUTHOR, "demo configuration")
    return True
