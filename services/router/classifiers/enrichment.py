"""Routing-time signals: language, urgency and the active models' predictions. Pure functions.

A router computes these once per ticket, before the rules, so rules can test ``language``,
``urgency``, ``category`` and ``category_confidence``; a team model then fills in where no rule
assigned a team. The cost per ticket is one language guess on at most ``LANGUAGE_CHARS``
characters, one urgency scan and one ``predict`` per active routing model.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from services.router.classification import (
    Prediction,
    TextUrgency,
    TicketClassifier,
    UrgencyAssessment,
    assess_urgency,
    batch_tokens,
    detect_language,
    detect_languages,
    scan_text,
)
from services.router.classification.model import BATCH_FROM
from services.router.classifiers.schemas import LabelKind
from shared.frozen import frozen

LANGUAGE_CHARS = 1_000  # enough for a confident guess; longer text only costs time
CLASSIFY_CHARS = 10_000  # descriptions may be 200 kB (pasted logs); the opening carries the topic

URGENCY_EVIDENCE = 3  # urgency signals quoted in a decision's reasons
BelowThreshold = Literal["triage", "rules"]


@dataclass(frozen=True)
class ActiveModel:
    version: int
    name: str
    label_kind: LabelKind
    model: TicketClassifier


@dataclass(frozen=True)
class ClassifierView:
    """What a router knows at one instant. Immutable: a refresh swaps in a new view.

    ``team_languages`` has every active team, with or without languages (see
    ``service.team_languages``): its keys are the teams a team model may route to."""

    models: Mapping[LabelKind, ActiveModel] = field(default_factory=dict)
    team_languages: Mapping[str, frozenset[str]] = field(default_factory=dict)
    below_threshold: BelowThreshold = "triage"

    @property
    def active_teams(self) -> Collection[str]:
        return self.team_languages.keys()


NO_CLASSIFIERS = ClassifierView()


@frozen
class Signals:
    language: str | None
    urgency: UrgencyAssessment
    category: Prediction | None = None
    team: Prediction | None = None
    team_model: ActiveModel | None = None

    def facts(self) -> dict[str, Any]:
        """Keyword arguments for ``facts_from_ticket``."""
        return {
            "language": self.language,
            "urgency": self.urgency.level,
            "category": None if self.category is None else self.category.label,
            "category_confidence": None if self.category is None else self.category.confidence,
        }

    def summary(self) -> str:
        urgency = f"urgency {self.urgency.level}"
        if self.urgency.signals:  # the evidence: a priority derived from it says only "urgency high"
            shown = self.urgency.signals[:URGENCY_EVIDENCE]
            more = len(self.urgency.signals) - len(shown)
            urgency += " (" + "; ".join(shown) + (f"; {more} more" if more else "") + ")"
        parts = [f"language {self.language or 'unknown'}", urgency]
        if self.category is not None:
            parts.append(f"category {self.category.label} (confidence {self.category.confidence:.2f})")
        return "detected: " + ", ".join(parts)


def ticket_text(subject: str, description: str) -> str:
    return f"{subject}\n{description}"[:CLASSIFY_CHARS]


@frozen
class TextSignals:
    """The signals that depend on the subject and description alone (the costly ones)."""

    language: str | None
    category: Prediction | None
    team: Prediction | None
    urgency: TextUrgency


def text_signals(subject: str, description: str, view: ClassifierView = NO_CLASSIFIERS) -> TextSignals:
    text = ticket_text(subject, description)
    category_model = view.models.get(LabelKind.CATEGORY)
    team_model = view.models.get(LabelKind.TEAM)
    return TextSignals(
        language=detect_language(text[:LANGUAGE_CHARS]).language,
        category=None if category_model is None else category_model.model.predict(text),
        team=None if team_model is None else team_model.model.predict(text),
        urgency=scan_text(subject, description[:CLASSIFY_CHARS]),
    )


def text_signals_many(
    texts: Sequence[tuple[str, str]], view: ClassifierView = NO_CLASSIFIERS
) -> list[TextSignals]:
    """``text_signals`` of many (subject, description) pairs: one batched language walk and one
    matrix product per model instead of one Python pass per ticket."""
    joined = [ticket_text(subject, description) for subject, description in texts]
    languages = detect_languages([text[:LANGUAGE_CHARS] for text in joined])
    # Each text lower-cased and split once, for every active model and the urgency scan.
    tokens = batch_tokens(joined) if view.models and len(joined) >= BATCH_FROM else None
    predictions: dict[LabelKind, list[Prediction] | list[None]] = {}
    for kind in (LabelKind.CATEGORY, LabelKind.TEAM):
        active = view.models.get(kind)
        predictions[kind] = (
            [None] * len(joined) if active is None else active.model.predict_many(joined, tokens)
        )
    # Urgency too, in one tight pass over the batch: measured in the router's handler, a ticket's
    # scan cost about twice as much run between its other routing steps (probably their data
    # evicting its tables from the CPU caches).
    urgencies = []
    for i, (subject, description) in enumerate(texts):
        clipped = description[:CLASSIFY_CHARS]
        runs = None
        # The classifier's word runs serve when it read the same text: ``joined[i]`` is a prefix of it.
        if tokens is not None and len(joined[i]) == len(subject) + 1 + len(clipped):
            runs = tokens[1][i]
        urgencies.append(scan_text(subject, clipped, runs))
    return [
        TextSignals(language.language, category, team, urgency)
        for language, category, team, urgency in zip(
            languages, predictions[LabelKind.CATEGORY], predictions[LabelKind.TEAM], urgencies, strict=True
        )
    ]


def compute_signals(
    subject: str,
    description: str,
    tags: Iterable[str] = (),
    view: ClassifierView = NO_CLASSIFIERS,
    known: TextSignals | None = None,
) -> Signals:
    """``known``: this text's signals when a batch computed them already (see text_signals_many)."""
    text_part = known if known is not None else text_signals(subject, description, view)
    # Blanks long tokens itself.
    urgency = assess_urgency(subject, description[:CLASSIFY_CHARS], tags, text_part.urgency)
    return Signals(
        language=text_part.language,
        urgency=urgency,
        category=text_part.category,
        team=text_part.team,
        team_model=view.models.get(LabelKind.TEAM),
    )


def detected_urgency(subject: str, description: str, tags: Iterable[str] = ()) -> str:
    """The urgency level routing gives the rules for this text (no model needed): for dry runs and
    replays, which must see the ``urgency`` fact as routing does."""
    clipped = description[:CLASSIFY_CHARS]
    return assess_urgency(subject, clipped, tags, scan_text(subject, clipped)).level


def _pair(confidence: float, threshold: float) -> tuple[str, str]:
    """Two decimals, unless rounding would make a miss look like a tie: then as many as tell them
    apart (four at least; four alone still showed 0.80999 against 0.81 as "0.8100 < 0.8100")."""
    a, b = f"{confidence:.2f}", f"{threshold:.2f}"
    if a == b and math.isfinite(threshold) and confidence != threshold:
        for digits in range(4, 18):
            a, b = f"{confidence:.{digits}f}", f"{threshold:.{digits}f}"
            if a != b:
                break
        else:
            a, b = repr(confidence), repr(threshold)
    return a, b


def classifier_team(
    prediction: Prediction,
    threshold: float,
    rules_team: str | None,
    below: BelowThreshold,
    active_teams: Collection[str],
) -> tuple[str | None, str]:
    """The team once a team model has spoken where no rule assigned one; with the reason.

    ``rules_team`` is what the rules fell back to (their default team, or None for triage). A
    model trained before a team was deactivated or deleted still predicts it: a label that is not
    in ``active_teams`` is treated like a prediction below the threshold.
    """
    confidence, limit = _pair(prediction.confidence, threshold)
    if prediction.above_threshold and prediction.label in active_teams:
        return prediction.label, (
            f"classifier: team {prediction.label} (confidence {confidence} >= threshold {limit})"
        )
    if prediction.above_threshold:
        unsure = f"classifier: team {prediction.label} is not an active team (confidence {confidence})"
    else:
        unsure = f"classifier unsure: team {prediction.label} (confidence {confidence} < threshold {limit})"
    if below == "rules" and rules_team is not None:
        return rules_team, f'{unsure}: rules\' default team "{rules_team}"'
    return None, f"{unsure}: triage"


def filter_pool_by_language(
    teams: Sequence[str], language: str | None, team_languages: Mapping[str, Iterable[str]]
) -> tuple[str, ...]:
    """The pool's teams that speak ``language``, in pool order; the whole pool when none does.

    Teams without listed languages are not assumed to speak anything in particular. A team that
    lists a regional variant (``pt-br``) speaks the language the detector names (``pt``).
    """
    if language is None:
        return tuple(teams)
    speaking = tuple(t for t in teams if _speaks(team_languages.get(t, ()), language))
    return speaking or tuple(teams)


def _speaks(languages: Iterable[str], language: str) -> bool:
    return any(code == language or code.partition("-")[0] == language for code in languages)
