"""Evaluation of a trained classifier on labelled data it has not seen."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import precision_recall_fscore_support

from services.router.classification.model import TicketClassifier


class ClassFigures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    precision: float
    recall: float
    f1: float
    support: int


class EvaluationReport(BaseModel):
    """JSON-serialisable (``report.model_dump_json()``)."""

    model_config = ConfigDict(extra="forbid")

    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassFigures]
    threshold: float
    coverage: float  # share of tickets with confidence >= threshold
    precision_at_threshold: float | None  # accuracy on that share; None when nothing is covered


def evaluate(model: TicketClassifier, texts: Sequence[str], labels: Sequence[str]) -> EvaluationReport:
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise ValueError("nothing to evaluate")
    predictions = model.predict_many(texts)
    return report_from_predictions(
        [p.label for p in predictions], [p.confidence for p in predictions], labels, model.threshold
    )


def report_from_predictions(
    predicted: Sequence[str], confidences: Sequence[float], labels: Sequence[str], threshold: float
) -> EvaluationReport:
    truth = np.asarray(labels, dtype=object)
    pred = np.asarray(predicted, dtype=object)
    correct = truth == pred
    covered = np.asarray(confidences, dtype=np.float64) >= threshold
    # Macro figures over the labels that occur in the truth or the predictions (sklearn's default).
    names = sorted(set(truth) | set(pred))
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=names, zero_division=0)
    per_class = {
        n: ClassFigures(precision=float(p[i]), recall=float(r[i]), f1=float(f[i]), support=int(s[i]))
        for i, n in enumerate(names)
    }
    return EvaluationReport(
        n=len(truth),
        accuracy=float(correct.mean()),
        macro_f1=float(np.mean(f)),
        per_class=per_class,
        threshold=threshold,
        coverage=float(covered.mean()),
        precision_at_threshold=float(correct[covered].mean()) if covered.any() else None,
    )
