"""The ticket classifier: TF-IDF features, a stack of linear models collapsed into one weight matrix
(see ``stacking``) and temperature-scaled softmax confidence."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import scipy.sparse as sp
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from sklearn.model_selection import StratifiedKFold

from services.router.classification.features import BatchTokens, FeatureConfig, TextFeaturizer
from services.router.classification.stacking import (
    Blocks,
    Meta,
    collapse,
    fit_bases,
    fit_linear,
    fit_meta,
    out_of_fold_scores,
)
from shared.frozen import frozen

FORMAT_VERSION = 1
_MAGIC = "ticket-classifier"
# Fewer texts than this are predicted one by one (``predict``'s sparse fast path): below about
# three, the batch path's matrix set-up (~0.15 ms a call) costs more than it saves.
BATCH_FROM = 3


@frozen
class Prediction:
    label: str
    confidence: float
    # True when confidence reaches the model's threshold: safe to route without a human.
    above_threshold: bool = False


class TrainingFigures(BaseModel):
    """Cross-validated (out-of-fold) figures measured on the training data by ``train``."""

    model_config = ConfigDict(extra="forbid")

    folds: int
    accuracy: float
    macro_f1: float
    target_precision: float
    target_reached: bool
    coverage_at_threshold: float
    precision_at_threshold: float | None
    # Added after format 1 shipped; the defaults describe models trained before (point estimate).
    bound_z: float = 0.0  # the threshold's precision had to reach the target at this Wilson z
    precision_lower_bound: float | None = None  # Wilson lower bound at bound_z of precision_at_threshold


class ModelMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    labels: list[str]
    threshold: float = 0.0
    temperature: float = 1.0
    c: float
    features: dict[str, Any]
    n_examples: int
    trained_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    training: TrainingFigures | None = None


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(scores: np.ndarray, y: NDArray[np.int64]) -> float:
    """Temperature minimising the log loss of softmax(scores / T) on held-out scores."""

    def nll(log_t: float) -> float:
        z = scores / np.exp(log_t)
        return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(y)), y]))

    res = minimize_scalar(nll, bounds=(-6.0, 4.0), method="bounded")
    return float(np.exp(res.x))


# What a label can become: a ticket's category or team (columns of 100 characters).
MAX_LABEL_CHARS = 100


class TicketClassifier:
    """Predicts a label (category, team or priority: any string) with a calibrated confidence."""

    def __init__(self, c: float = 0.4, features: FeatureConfig | None = None) -> None:
        self.c = c
        self.featurizer = TextFeaturizer(features)
        self.metadata: ModelMetadata | None = None
        self._weights = np.zeros((0, 0), dtype=np.float32)
        self._intercept = np.zeros(0, dtype=np.float32)
        self._labels: list[str] = []

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def threshold(self) -> float:
        return self._meta().threshold

    def _meta(self) -> ModelMetadata:
        if self.metadata is None:
            raise RuntimeError("the classifier is not fitted")
        return self.metadata

    def fit(
        self, texts: Sequence[str], labels: Sequence[str], temperature: float = 1.0, threshold: float = 0.0
    ) -> TicketClassifier:
        """Fit on all given data. ``train`` picks temperature and threshold by cross-validation."""
        x, y, names = self._prepare(texts, labels)
        return self.fit_matrix(x, y, names, temperature, threshold)

    def _prepare(
        self, texts: Sequence[str], labels: Sequence[str]
    ) -> tuple[sp.csr_matrix, np.ndarray, list[str]]:
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        names = sorted(set(labels))
        if len(names) < 2:
            raise ValueError("need at least two distinct labels to train")
        too_long = [name for name in names if len(name) > MAX_LABEL_CHARS]
        if too_long:
            # A ticket's category and team hold that much: on PostgreSQL a longer one was cut on
            # insert and failed the whole routing batch on update.
            raise ValueError(
                f"labels longer than {MAX_LABEL_CHARS} characters: {[n[:40] + '...' for n in too_long]}"
            )
        lookup = {n: i for i, n in enumerate(names)}
        y = np.fromiter((lookup[lab] for lab in labels), np.int64, len(labels))
        return self.featurizer.fit_transform(texts), y, names

    def fit_matrix(
        self,
        x: sp.csr_matrix,
        y: np.ndarray,
        names: list[str],
        temperature: float,
        threshold: float,
        training: TrainingFigures | None = None,
        meta: Meta | None = None,
    ) -> TicketClassifier:
        """Fit on features already produced by this classifier's featurizer.

        ``meta`` is the meta-model fitted on out-of-fold base scores (``train`` passes the one from its
        cross-validation); without it one is fitted here on up to 3 inner folds. With a label seen
        only once there are no out-of-fold scores, and the model is a single LinearSVC.
        """
        blocks = self.blocks(x)
        n_classes = len(names)
        smallest = int(np.bincount(y, minlength=n_classes).min())
        if meta is None and smallest >= 2:
            splitter = StratifiedKFold(n_splits=min(3, smallest), shuffle=True, random_state=0)
            splits = list(splitter.split(np.zeros(len(y)), y))
            meta = fit_meta(out_of_fold_scores(blocks, y, n_classes, self.c, splits), y, n_classes)
        if meta is None:
            self._weights, self._intercept = fit_linear(x, y, n_classes, self.c)
        else:
            self._weights, self._intercept = collapse(fit_bases(blocks, y, n_classes, self.c), meta, blocks)
        self._labels = names
        self.metadata = ModelMetadata(
            labels=names,
            threshold=threshold,
            temperature=temperature,
            c=self.c,
            features=self.featurizer.config.to_dict(),
            n_examples=x.shape[0],
            training=training,
        )
        return self

    def blocks(self, x: sp.csr_matrix) -> Blocks:
        """The word and char blocks of this classifier's feature rows, as the stack's bases see them."""
        return Blocks.of(x, len(self.featurizer.word_idf), self.featurizer.config.char_weight)

    def decision_scores(self, texts: Sequence[str], tokens: BatchTokens | None = None) -> np.ndarray:
        """``tokens``: ``batch_tokens(texts)``, when the caller has them."""
        self._meta()
        # A text's word and char blocks are two rows here: adding their products saves joining them.
        scores = np.asarray(self.featurizer.transform_stacked(texts, tokens) @ self._weights)
        return scores[: len(texts)] + scores[len(texts) :] + self._intercept

    def predict_proba(self, texts: Sequence[str], tokens: BatchTokens | None = None) -> np.ndarray:
        return softmax(self.decision_scores(texts, tokens), self._meta().temperature)

    def predict_many(self, texts: Sequence[str], tokens: BatchTokens | None = None) -> list[Prediction]:
        """``tokens``: ``batch_tokens(texts)``, when the caller has them (a batch's models share them)."""
        if len(texts) < BATCH_FROM:
            return [self.predict(text) for text in texts]
        proba = self.predict_proba(texts, tokens)
        best = proba.argmax(axis=1)
        confidence = proba[np.arange(len(best)), best]
        # In float64: against a float32 array numpy rounds the threshold to float32, which let a
        # confidence just below it count as above (and disagree with ``predict``).
        above = confidence.astype(np.float64) >= self._meta().threshold
        labels = self._labels
        return [
            Prediction(labels[b], c, a)
            for b, c, a in zip(best.tolist(), confidence.tolist(), above.tolist(), strict=True)
        ]

    def predict(self, text: str) -> Prediction:
        """One ticket, via the sparse fast path (no scipy matrices, no sklearn validation)."""
        meta = self._meta()
        idx, vals = self.featurizer.transform_one(text)
        scores = (vals @ self._weights[idx] + self._intercept) / meta.temperature
        scores = np.exp(scores - scores.max())
        best = int(scores.argmax())
        confidence = float(scores[best] / scores.sum())
        return Prediction(self._labels[best], confidence, confidence >= meta.threshold)

    # Serialisation: an .npz archive of plain arrays (never unpickled) plus JSON metadata.
    def to_bytes(self) -> bytes:
        meta = self._meta()
        header = {"magic": _MAGIC, "metadata": meta.model_dump(mode="json")}
        buf = io.BytesIO()
        arrays: dict[str, Any] = {
            "header": np.frombuffer(orjson.dumps(header), dtype=np.uint8),
            "weights": self._weights,
            "intercept": self._intercept,
            **self.featurizer.to_arrays(),
        }
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> TicketClassifier:
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            header = orjson.loads(arrays.pop("header").tobytes())
        except Exception as exc:  # zip, npz and JSON errors all mean "not a model blob"
            raise ValueError(f"not a serialised ticket classifier: {exc}") from exc
        if not isinstance(header, dict) or header.get("magic") != _MAGIC:
            raise ValueError("not a serialised ticket classifier")
        metadata = header.get("metadata")
        version = metadata.get("format_version") if isinstance(metadata, dict) else None
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported model format version {version}; this code reads {FORMAT_VERSION}")
        meta = ModelMetadata.model_validate(metadata)
        try:
            model = cls(c=meta.c, features=FeatureConfig(**meta.features))
            model.featurizer = TextFeaturizer.from_arrays(model.featurizer.config, arrays)
            model._weights = np.ascontiguousarray(arrays["weights"], dtype=np.float32)
            model._intercept = arrays["intercept"].astype(np.float32)
        except (KeyError, TypeError) as exc:
            # A missing array or feature setting: callers (the routers' reload, the dry run) expect
            # ValueError for a blob that is not a usable model, and a KeyError failed a whole reload.
            raise ValueError(f"corrupt model: {exc!r}") from exc
        model._labels = list(meta.labels)
        model.metadata = meta
        n_labels = len(meta.labels)
        # An intercept of another length loaded and then failed every prediction (or, of length 1,
        # broadcast into wrong scores); repeated labels named two classes alike.
        shapes = (model._weights.shape, model._intercept.shape)
        if shapes != ((model.featurizer.n_features, n_labels), (n_labels,)):
            raise ValueError("corrupt model: weight matrix does not match features and labels")
        if len(set(meta.labels)) != n_labels:
            raise ValueError("corrupt model: repeated labels")
        # A NaN or infinite number, or a temperature that is not positive, made every confidence NaN
        # (or the softmax reversed): the model loaded and never routed, silently.
        numbers = (model._weights, model._intercept, model.featurizer.word_idf, model.featurizer.char_idf)
        if not 0 < meta.temperature < np.inf or not all(np.isfinite(a).all() for a in numbers):
            raise ValueError("corrupt model: a weight, an idf or the temperature is not a finite number > 0")
        return model
