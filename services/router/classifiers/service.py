"""The classifier registry: training with honest figures, versioned storage, activation, feedback."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from services.router.classification import EvaluationReport, TicketClassifier, evaluate, train
from services.router.classification.training import Progress
from services.router.classifiers.enrichment import ticket_text
from services.router.classifiers.schemas import ClassifierOut, LabelKind
from services.router.models import ClassifierFeedback, ClassifierModel, Team
from shared.db import audit
from shared.events import EventType, RoutingPayload, utc_now

# --- training -------------------------------------------------------------------------------


class ModelUnfit(ValueError):
    """A model that cannot do its job here (a team model naming no active team)."""


def holdout_split(labels: Sequence[str], fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, holdout) indices, stratified by label. Every label keeps at least two training
    examples (cross-validation needs them), so rare labels may have none held out."""
    if not 0 <= fraction < 1:
        raise ValueError("holdout must be in [0, 1)")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    train_idx: list[int] = []
    held: list[int] = []
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        k = min(round(len(idx) * fraction), max(0, len(idx) - 2))
        held += idx[:k]
        train_idx += idx[k:]
    return sorted(train_idx), sorted(held)


def drop_rare(
    texts: Sequence[str], labels: Sequence[str], minimum: int = 2
) -> tuple[list[str], list[str], dict[str, int]]:
    """Without labels seen fewer than ``minimum`` times (cross-validation cannot place them), e.g.
    a team that so far appears in one correction only; returns the dropped labels and counts.

    Examples are counted as training counts them, a repeated ticket once (``without_duplicates``):
    a label whose rows are one ticket twice has one example, and kept it failed the whole training."""
    counts = Counter(without_duplicates(texts, labels)[1])
    rare = {label: n for label, n in counts.items() if n < minimum}
    keep = [i for i, label in enumerate(labels) if label not in rare]
    return [texts[i] for i in keep], [labels[i] for i in keep], rare


def train_with_figures(
    texts: Sequence[str],
    labels: Sequence[str],
    target_precision: float = 0.95,
    holdout: float = 0.2,
    progress: Progress | None = None,
    seed: int = 0,
) -> tuple[TicketClassifier, dict[str, Any]]:
    """Train on all but a stratified holdout share; figures: cross-validated on the training
    share (threshold, coverage, precision) plus per-class figures on the holdout it never saw.

    A ticket given twice with its label counts once: copies in different folds (and on both sides
    of the holdout) made the model look surer than it is, and the threshold chosen on that routed
    nearly everything at a precision well below the target (templated or alert tickets repeat,
    and feedback may repeat what the file has)."""
    texts, labels, duplicates = without_duplicates(texts, labels)
    train_idx, held = holdout_split(labels, holdout, seed)
    model = train(
        [texts[i] for i in train_idx],
        [labels[i] for i in train_idx],
        target_precision=target_precision,
        progress=progress,
        random_state=seed,
    )
    report = evaluate(model, [texts[i] for i in held], [labels[i] for i in held]) if held else None
    return model, {**figures_of(model, report), "duplicates_dropped": duplicates}


def without_duplicates(texts: Sequence[str], labels: Sequence[str]) -> tuple[list[str], list[str], int]:
    """The (text, label) pairs once each, text compared without case and spacing; and how many
    were dropped."""
    seen: set[tuple[str, str]] = set()
    kept_texts: list[str] = []
    kept_labels: list[str] = []
    for text, label in zip(texts, labels, strict=True):
        key = (" ".join(text.lower().split()), label)
        if key not in seen:
            seen.add(key)
            kept_texts.append(text)
            kept_labels.append(label)
    return kept_texts, kept_labels, len(texts) - len(kept_texts)


def figures_of(model: TicketClassifier, holdout: EvaluationReport | None) -> dict[str, Any]:
    meta = model.metadata
    assert meta is not None and meta.training is not None, "figures need a model made by train()"
    cv = meta.training
    return {
        "labels": model.labels,
        "threshold": model.threshold,
        "target_precision": cv.target_precision,
        "target_reached": cv.target_reached,
        "cross_validated": {
            "folds": cv.folds,
            "n": meta.n_examples,
            "accuracy": cv.accuracy,
            "macro_f1": cv.macro_f1,
            "coverage": cv.coverage_at_threshold,
            "precision_at_threshold": cv.precision_at_threshold,
        },
        "holdout": None if holdout is None else holdout.model_dump(mode="json", exclude={"per_class"}),
        "per_class": None
        if holdout is None
        else {k: v.model_dump(mode="json") for k, v in holdout.per_class.items()},
    }


# --- storage and activation -------------------------------------------------------------------


def summary(row: ClassifierModel) -> ClassifierOut:
    return ClassifierOut(
        version=row.id,
        name=row.name,
        label_kind=LabelKind(row.label_kind),
        active=row.active,
        created_at=row.created_at,
        trained_on=row.trained_on,
        figures=row.figures,
    )


async def store_model(
    session: AsyncSession,
    model: TicketClassifier,
    *,
    name: str,
    label_kind: LabelKind,
    figures: dict[str, Any],
    trained_on: dict[str, Any],
) -> ClassifierModel:
    row = ClassifierModel(
        name=name,
        label_kind=label_kind.value,
        created_at=utc_now(),
        trained_on=trained_on,
        figures=figures,
        blob=model.to_bytes(),
        active=False,
    )
    session.add(row)
    await session.flush()
    return row


async def list_models(session: AsyncSession, label_kind: LabelKind | None = None) -> list[ClassifierModel]:
    query = select(ClassifierModel).options(defer(ClassifierModel.blob)).order_by(ClassifierModel.id.desc())
    if label_kind is not None:
        query = query.where(ClassifierModel.label_kind == label_kind.value)
    return list((await session.scalars(query)).all())


async def get_model(session: AsyncSession, version: int, with_blob: bool = False) -> ClassifierModel | None:
    query = select(ClassifierModel).where(ClassifierModel.id == version)
    if not with_blob:
        query = query.options(defer(ClassifierModel.blob))
    return await session.scalar(query)


async def active_model(session: AsyncSession, label_kind: LabelKind) -> ClassifierModel | None:
    return await session.scalar(
        select(ClassifierModel).where(ClassifierModel.active, ClassifierModel.label_kind == label_kind.value)
    )


async def active_versions(session: AsyncSession) -> dict[LabelKind, int]:
    """The routers' poll: one small query on an index-sized set of rows."""
    rows = await session.execute(
        select(ClassifierModel.label_kind, ClassifierModel.id).where(ClassifierModel.active)
    )
    return {LabelKind(kind): version for kind, version in rows.all()}


async def ensure_loads(session: AsyncSession, version: int) -> None:
    """Raise ModelUnfit when the stored blob of ``version`` does not load (damaged, or of a format
    this code does not read): activated, it would step the working model of its kind down and
    leave every router without one. An unknown version passes (``activate`` says so)."""
    row = await get_model(session, version, with_blob=True)
    if row is None:
        return
    try:
        await asyncio.to_thread(TicketClassifier.from_bytes, row.blob)
    except ValueError as exc:
        raise ModelUnfit(f"model {version} does not load: {exc}") from exc


async def activate(session: AsyncSession, version: int, actor: str) -> ClassifierModel | None:
    """Make ``version`` the active model of its kind (the previous one steps down); None if unknown."""
    row = await get_model(session, version)
    if row is None:
        return None
    if row.active:  # nothing steps down or up: no audit entry naming it its own predecessor
        return row
    labels = row.figures.get("labels")  # None: stored without its figures, cannot tell
    if row.label_kind == LabelKind.TEAM.value and labels:
        active_teams = set((await session.scalars(select(Team.name).where(Team.active))).all())
        if not active_teams & set(labels):
            # Every prediction would fall through to triage or the default team, silently.
            raise ModelUnfit(f"none of model {version}'s labels is an active team: {labels}")
    previous = await active_model(session, LabelKind(row.label_kind))
    # Step down first: the partial unique index allows one active row per kind at any moment.
    await session.execute(
        update(ClassifierModel)
        .where(
            ClassifierModel.label_kind == row.label_kind,
            ClassifierModel.active,
            ClassifierModel.id != version,
        )
        .values(active=False)
    )
    await session.execute(update(ClassifierModel).where(ClassifierModel.id == version).values(active=True))
    detail = {"label_kind": row.label_kind, "previous": None if previous is None else previous.id}
    audit.record(session, actor, "activate", "classifier_model", str(version), detail)
    await session.flush()
    await session.refresh(row, attribute_names=["active"])
    return row


async def deactivate(session: AsyncSession, label_kind: LabelKind, actor: str) -> int | None:
    """No active model of ``label_kind`` any more; returns the version that stepped down."""
    previous = await active_model(session, label_kind)
    if previous is None:
        return None
    await session.execute(
        update(ClassifierModel).where(ClassifierModel.id == previous.id).values(active=False)
    )
    audit.record(
        session, actor, "deactivate", "classifier_model", str(previous.id), {"label_kind": label_kind.value}
    )
    return previous.id


async def team_languages(session: AsyncSession) -> dict[str, frozenset[str]]:
    rows = await session.execute(select(Team.name, Team.languages).where(Team.active))
    return {name: frozenset(str(lang).lower() for lang in languages or ()) for name, languages in rows.all()}


# --- feedback -------------------------------------------------------------------------------


def is_team_correction(kind: EventType, payload: RoutingPayload) -> bool:
    """A state change that moved the ticket to another team: only the source system does that."""
    return (
        # Also when the move came with a solve or a reopen (one webhook, one event).
        kind in (EventType.TICKET_STATE_CHANGED, EventType.TICKET_RESOLVED, EventType.TICKET_REOPENED)
        and payload.state.team is not None
        and payload.state.team != payload.previous_team
    )


def feedback_row(
    ticket_key: str, subject: str, description: str, payload: RoutingPayload
) -> ClassifierFeedback:
    assert payload.state.team is not None
    return ClassifierFeedback(
        ticket_key=ticket_key,
        text=ticket_text(subject, description),
        label=payload.state.team,
        previous_label=payload.previous_team,
        created_at=utc_now(),
    )


async def feedback_examples(session: AsyncSession) -> list[ClassifierFeedback]:
    """Every correction, oldest first, keeping only the latest one of each ticket."""
    rows = (await session.scalars(select(ClassifierFeedback).order_by(ClassifierFeedback.id))).all()
    latest = {row.ticket_key: row for row in rows}
    return sorted(latest.values(), key=lambda row: row.id)
