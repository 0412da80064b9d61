"""Training with a cross-validated confidence threshold."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from services.router.classification import stacking
from services.router.classification.features import FeatureConfig
from services.router.classification.model import (
    TicketClassifier,
    TrainingFigures,
    fit_temperature,
    softmax,
)

TrainedModel = TicketClassifier
Progress = Callable[[str, float], None]


# One-sided 95 % normal quantile: a margin between the cross-validated precision and the target.
DEFAULT_BOUND_Z = 1.645


def wilson_lower_bound(correct: np.ndarray, total: np.ndarray, z: float) -> np.ndarray:
    """Wilson score lower bound of a binomial proportion (elementwise); ``z = 0`` gives correct / total."""
    n = np.asarray(total, dtype=np.float64)
    p = np.asarray(correct, dtype=np.float64) / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return np.asarray((centre - spread) / (1 + z2 / n))


def choose_threshold(
    confidences: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    target_precision: float,
    z: float = 0.0,
) -> tuple[float, bool]:
    """Lowest confidence threshold t such that precision over {confidence >= t} >= target.

    With ``z > 0`` the precision must be reached by its Wilson lower bound at that z rather than by
    the point estimate. Picking the lowest of many cuts favours cuts where the sample happened to be
    lucky, so the point estimate is optimistic on new data; the bound's margin shrinks as the covered
    set grows, so it costs coverage only where the evidence is thin.

    Returns (threshold, reached). When no threshold reaches the target, the threshold is set just
    above the highest confidence, so nothing is auto-routed.
    """
    if z < 0:
        raise ValueError("z must be >= 0")
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape or conf.ndim != 1:
        raise ValueError("confidences and correct must be 1-d and of equal length")
    if len(conf) == 0:
        return math.inf, False
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    precision = wilson_lower_bound(np.cumsum(ok), np.arange(1, len(ok) + 1), z)
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
    folds: int = 3,
    progress: Progress | None = None,
    c: float = 0.4,
    features: FeatureConfig | None = None,
    random_state: int = 0,
    bound_z: float = 0.0,
) -> TrainedModel:
    """Fit a classifier on all data; temperature and threshold come from out-of-fold predictions.

    One inner cross-validation serves twice: its out-of-fold base scores train the stack's
    meta-model (see ``stacking``), and the meta-model cross-validated on those same folds gives
    every example an out-of-fold confidence, from which the temperature and the threshold are
    chosen. The threshold is the lowest one whose out-of-fold precision reaches ``target_precision``
    by its Wilson lower bound at ``bound_z`` (0 = by the point estimate); see ``choose_threshold``.

    ``folds`` defaults to 3: the stack fits every base model ``folds + 1`` times, and 3 inner folds
    keep full training of the IT tickets (38k) under a minute; the threshold still gets one
    out-of-fold confidence per example.

    The TF-IDF vocabulary and idf are fitted once on all given texts and shared by the inner folds:
    they use no labels, and refitting them per fold would double the training time. Only the
    given data is used; evaluate on data kept out of ``texts``.
    """
    if not 0 < target_precision <= 1:
        raise ValueError("target_precision must be in (0, 1]")
    if bound_z < 0:
        raise ValueError("bound_z must be >= 0")
    report = progress or (lambda stage, fraction: None)
    model = TicketClassifier(c=c, features=features)
    report("features", 0.0)
    x, y, names = model._prepare(texts, labels)
    n_classes = len(names)
    smallest = int(np.bincount(y).min())
    n_folds = min(folds, smallest)
    if n_folds < 2:
        raise ValueError(f"every label needs at least 2 examples for cross-validation (one has {smallest})")
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    splits = list(splitter.split(np.zeros(len(y)), y))
    z = stacking.out_of_fold_scores(
        model.blocks(x), y, n_classes, c, splits, lambda k: report("cross-validation", k / (n_folds + 1))
    )
    meta = stacking.fit_meta(z, y, n_classes)
    # The meta-model's own out-of-fold logits: honest confidences for the temperature and threshold.
    scores = np.zeros((len(y), n_classes))
    for tr, te in splits:
        scores[te] = stacking.fit_meta(z[tr], y[tr], n_classes, start=meta).scores(z[te])
    temperature = fit_temperature(scores, y)
    proba = softmax(scores, temperature)
    predicted = proba.argmax(axis=1)
    confidence = proba[np.arange(len(y)), predicted]
    correct = predicted == y
    threshold, reached = choose_threshold(confidence, correct, target_precision, bound_z)
    covered = confidence >= threshold
    n_covered, n_right = int(covered.sum()), int(correct[covered].sum())
    figures = TrainingFigures(
        folds=n_folds,
        accuracy=float(correct.mean()),
        macro_f1=float(f1_score(y, predicted, average="macro")),
        target_precision=target_precision,
        target_reached=reached,
        coverage_at_threshold=float(covered.mean()),
        precision_at_threshold=n_right / n_covered if n_covered else None,
        bound_z=bound_z,
        precision_lower_bound=float(wilson_lower_bound(np.array(n_right), np.array(n_covered), bound_z))
        if n_covered
        else None,
    )
    report("final fit", n_folds / (n_folds + 1))
    model.fit_matrix(x, y, names, temperature, threshold, training=figures, meta=meta)
    report("done", 1.0)
    return model
