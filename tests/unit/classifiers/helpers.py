"""Small synthetic team data and builders shared by the classifier registry tests."""

from __future__ import annotations

import random
from functools import lru_cache

from services.router.classification import TicketClassifier, train
from services.router.classifiers.enrichment import ActiveModel, ClassifierView
from services.router.classifiers.schemas import LabelKind

VOCAB = {
    "network": "vpn wifi router switch dns ping latency firewall cable connection",
    "access": "password login account locked reset permission sso token mfa grant",
    "hardware": "laptop screen keyboard mouse battery printer dock charger monitor fan",
}
COMMON = ["please", "help", "thanks", "issue", "today", "user", "team", "request", "hello", "regards"]
SURE_NETWORK = "vpn wifi dns firewall ping router not connecting"
UNSURE = "zzz qqq"  # no known word: the model guesses with low confidence


def synthetic(n: int = 60, seed: int = 7) -> tuple[list[str], list[str]]:
    """Three labels with overlapping vocabulary: often right, not always (a real threshold)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        for label, words in VOCAB.items():
            own = words.split()
            other = [w for k, ws in VOCAB.items() if k != label for w in ws.split()]
            tokens = rng.sample(own, rng.randint(1, 4)) + rng.sample(other, rng.randint(0, 3))
            tokens += rng.sample(COMMON, 3)
            rng.shuffle(tokens)
            texts.append(" ".join(tokens))
            labels.append(label)
    return texts, labels


@lru_cache(maxsize=2)
def model(seed: int = 7) -> TicketClassifier:
    texts, labels = synthetic(seed=seed)
    return train(texts, labels, target_precision=0.9)


def view(
    kind: LabelKind = LabelKind.TEAM,
    below: str = "triage",
    team_languages: dict[str, frozenset[str]] | None = None,
    active_teams: tuple[str, ...] = tuple(VOCAB),
) -> ClassifierView:
    """``active_teams``: teams a team model may route to (all labels unless said otherwise)."""
    active = ActiveModel(1, "synthetic", kind, model())
    languages = {team: frozenset[str]() for team in active_teams} | (team_languages or {})
    return ClassifierView({kind: active}, languages, below)  # type: ignore[arg-type]
