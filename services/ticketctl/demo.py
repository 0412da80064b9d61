"""The small demo configuration ``make run`` seeds into an empty database."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.config_lock import lock_config
from services.router.models import Team
from services.router.rules import RuleSet
from services.router.rulesets.store import save_version

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


async def seed_demo(session: AsyncSession) -> bool:
    """Insert the demo teams and rules when no team exists yet; True when it seeded."""
    await lock_config(session)  # a configuration write: before its "no team yet" check
    if await session.scalar(select(func.count()).select_from(Team)):
        return False
    session.add_all(
        Team(**{c: getattr(t, c) for c in ("name", "description", "capacity", "skills", "languages")})
        for t in DEMO_TEAMS
    )
    await save_version(
        session,
        RuleSet.model_validate(DEMO_RULES),
        author="make run (demo seed)",
        comment="demo configuration",
    )
    return True
