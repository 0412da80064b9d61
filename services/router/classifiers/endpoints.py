"""``/v1/classifiers``: the model registry (list, show, activate, deactivate) and a dry-run predict."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from services.router.classifiers import service
from services.router.classifiers.enrichment import ActiveModel, compute_signals, ticket_text
from services.router.classifiers.live import LiveClassifier
from services.router.classifiers.schemas import (
    MAX_VERSION,
    ClassifierList,
    ClassifierOut,
    LabelKind,
    PredictIn,
    PredictOut,
)
from services.router.openapi import READ, problems
from shared.auth import Caller, Role, require_caller, require_role
from shared.http.problems import Problem

router = APIRouter(prefix="/v1/classifiers", tags=["classifiers"])
VersionPath = Path(ge=1, le=MAX_VERSION, description="The model's version (its id).")


class DeactivateOut(BaseModel):
    label_kind: LabelKind
    deactivated: int | None  # the version that stepped down; None when none was active


def _not_found(version: int) -> Problem:
    return Problem(
        404,
        "Not found",
        f"no classifier model version {version}",
        errors=[{"field": "/path/version", "message": "unknown model version"}],
    )


@router.get(
    "",
    response_model=ClassifierList,
    responses=problems(*READ),
    summary="Stored models with their figures (no blobs)",
)
async def list_classifiers(
    request: Request,
    label_kind: LabelKind | None = Query(default=None, description="Only models of this kind."),
    _role: Role = Depends(require_role(Role.VIEWER)),
) -> ClassifierList:
    async with request.app.state.sessions() as session:
        rows = await service.list_models(session, label_kind)
    return ClassifierList(items=[service.summary(row) for row in rows])


@router.get(
    "/{version}",
    response_model=ClassifierOut,
    responses=problems(*READ, 404),
    summary="One stored model and its figures",
)
async def get_classifier(
    request: Request, version: int = VersionPath, _role: Role = Depends(require_role(Role.VIEWER))
) -> ClassifierOut:
    async with request.app.state.sessions() as session:
        row = await service.get_model(session, version)
    if row is None:
        raise _not_found(version)
    return service.summary(row)


@router.post(
    "/{version}/activate",
    response_model=ClassifierOut,
    responses=problems(*READ, 404, 409),
    summary="Make a model the active one of its kind",
)
async def activate_classifier(
    request: Request, version: int = VersionPath, caller: Caller = Depends(require_caller(Role.ADMIN))
) -> ClassifierOut:
    try:
        async with request.app.state.sessions() as session, session.begin():
            await service.ensure_loads(session, version)
            row = await service.activate(session, version, caller.name)
            if row is None:
                raise _not_found(version)
            out = service.summary(row)
    except service.ModelUnfit as exc:
        raise Problem(
            409, "Conflict", str(exc), errors=[{"field": "/path/version", "message": "not activated"}]
        ) from exc
    except IntegrityError as exc:  # the partial unique index: another activation of this kind won
        raise Problem(
            409, "Conflict", "another model of this kind was activated at the same time; retry"
        ) from exc
    # This router switches now; the others within their poll period.
    await request.app.state.classifiers.refresh()
    return out


@router.post(
    "/deactivate",
    response_model=DeactivateOut,
    responses=problems(*READ),
    summary="Stop using any model of a kind",
)
async def deactivate_classifier(
    request: Request,
    label_kind: LabelKind = Query(description="category, team or priority."),
    caller: Caller = Depends(require_caller(Role.ADMIN)),
) -> DeactivateOut:
    async with request.app.state.sessions() as session, session.begin():
        version = await service.deactivate(session, label_kind, caller.name)
    await request.app.state.classifiers.refresh()
    return DeactivateOut(label_kind=label_kind, deactivated=version)


@router.post(
    "/predict",
    response_model=PredictOut,
    responses=problems(*READ, 404, 409),
    summary="Dry run: what the router would detect",
)
async def predict(
    body: PredictIn, request: Request, _role: Role = Depends(require_role(Role.VIEWER))
) -> PredictOut:
    if not (body.subject.strip() or body.description.strip()):
        raise Problem(
            422,
            "Invalid request",
            "give a subject or a description",
            errors=[{"field": "/subject", "message": "subject and description are both empty"}],
        )
    live: LiveClassifier = request.app.state.classifiers
    chosen: ActiveModel | None
    if body.version is None:
        chosen = live.view.models.get(body.label_kind)
    else:
        try:
            async with request.app.state.sessions() as session:
                chosen = await live.dry_runs.get(session, body.version)  # loaded once, then kept
        except ValueError as exc:  # damaged, or of a format this code does not read
            raise Problem(
                409,
                "Conflict",
                f"classifier model version {body.version} does not load: {exc}",
                errors=[{"field": "/version", "message": "model does not load"}],
            ) from exc
        if chosen is None:
            raise Problem(
                404,
                "Not found",
                f"no classifier model version {body.version}",
                errors=[{"field": "/version", "message": "unknown model version"}],
            )
    # Language and urgency exactly as the router computes them; the prediction from the chosen model.
    signals = compute_signals(body.subject, body.description)
    prediction = None if chosen is None else chosen.model.predict(ticket_text(body.subject, body.description))
    return PredictOut(
        version=None if chosen is None else chosen.version,
        label_kind=body.label_kind if chosen is None else chosen.label_kind,
        label=None if prediction is None else prediction.label,
        confidence=None if prediction is None else prediction.confidence,
        threshold=None if chosen is None else chosen.model.threshold,
        above_threshold=prediction is not None and prediction.above_threshold,
        language=signals.language,
        urgency=signals.urgency.level,
        urgency_signals=signals.urgency.signals,
    )
