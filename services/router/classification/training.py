"""Training with a cross-validated confidence threshold."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from services.router.classification.features import FeatureConfig
from services.router.classification.model import (
    TicketClassifier,
    TrainingFigures,
    fit_linear,
    fit_temperature,
    softmax,
)

TrainedModel = TicketClassifier
Progress = Callable[[str, float], None]


def choose_threshold(confidences: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray,
                     target_precision: float) -> tuple[float, bool]:
    """Lowest confidence threshold t such that precision over {confidence >= t} >= target.

    Returns (threshold, reached). When no threshold reaches the target, the threshold is set just
    above the highest confidence, so nothing is auto-routed.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape or conf.ndim != 1:
        raise ValueError("confidences and correct must be 1-d and of equal length")
    if len(conf) == 0:
        return math.inf, False
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    precision = np.cumsum(ok) / np.arange(1, len(ok) + 1)
    # Only the last position of a run of tied confidences is a real cut: "at or above" takes all ties.
    last_of_tie = np.r_[conf[1:] != conf[:-1], True]
    good = np.flatnonzero(last_of_tie & (precision >= target_precision))
    if len(good) == 0:
        return float(np.nextafter(conf[0], math.inf)), False
    return float(conf[good[-1]]), True


def train(
    texts: Sequence[str],
    labels: Sequence[str],
    target_precision: float = 0.95,
    folds: int = 5,
    progress: Progress | None = None,
    c: float = 0.4,
    features: FeatureConfig | None = None,
    random_state: int = 0,
) -> TrainedModel:
    """Fit a classifier on all data; temperature and threshold come from out-of-fold predictions.

    The TF-IDF vocabulary and idf are fitted once on all given texts and shared by the inner folds:
    they use no labels, and refitting them per fold would double the training time. Only the
    given data is used; evaluate on data kept out of ``texts``.
    """
    if not 0 < target_precision <= 1:
        raise ValueError("target_precision must be in (0, 1]")
    report = progress or (lambda stage, fraction: None)
    model = TicketClassifier(c=c, features=features)
    report("features", 0.0)
    x, y, names = model._prepare(texts, labels)
    smallest = int(np.bincount(y).min())
    n_folds = min(folds, smallest)
    if n_folds < 2:
        raise ValueError(f"every label needs at least 2 examples for cross-validation (one has {smallest})")
    scores = np.zeros((len(y), len(names)), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    for k, (tr, te) in enumerate(splitter.split(np.zeros(len(y)), y)):
        report("cross-validation", k / (n_folds + 1))
        weights, intercept = fit_linear(x[tr], y[tr], len(names), c)
        scores[te] = np.asarray(x[te] @ weights) + intercept
    temperature = fit_temperature(scores, y)
    proba = softmax(scores, temperature)
    predicted = proba.argmax(axis=1)
    confidence = proba[np.arange(len(y)), predicted]
    correct = predicted == y
    threshold, reached = choose_threshold(confidence, correct, target_precision)
    covered = confidence >= threshold
    figures = TrainingFigures(
        folds=n_folds,
        accuracy=float(correct.mean()),
        macro_f1=float(f1_score(y, predicted, average="macro")),
        target_precision=target_precision,
        target_reached=reached,
        coverage_at_threshold=float(covered.mean()),
        precision_at_threshold=float(correct[covered].mean()) if covered.any() else None,
    )
    report("final fit", n_folds / (n_folds + 1))
    model.fit_matrix(x, y, names, temperature, threshold, training=figures)
    report("done", 1.0)
    return model
