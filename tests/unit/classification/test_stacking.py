"""The stacked classifier: it collapses into one linear layer, and its threshold is out-of-fold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from services.router.classification import TicketClassifier, stacking, train
from services.router.classification.features import FeatureConfig, TextFeaturizer
from services.router.classification.stacking import (
    BASES,
    Blocks,
    base_scores,
    collapse,
    fit_bases,
    fit_meta,
    out_of_fold_scores,
)


def _encode(labels: list[str]) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(labels))
    return np.array([names.index(lab) for lab in labels]), names


@pytest.mark.parametrize("n_labels", [2, 3])
def test_stack_collapses_to_one_layer(synthetic, n_labels):
    texts, labels = synthetic
    keep = [i for i, lab in enumerate(labels) if lab in sorted(set(labels))[:n_labels]][:240]
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    y, names = _encode(labels)
    featurizer = TextFeaturizer(FeatureConfig(char_weight=0.6))
    x = featurizer.fit_transform(texts[:180])
    blocks = Blocks.of(x, len(featurizer.word_idf), 0.6)
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(np.zeros(180), y[:180]))
    z = out_of_fold_scores(blocks, y[:180], len(names), 0.4, splits)
    assert z.shape == (180, len(names) * len(BASES))
    meta = fit_meta(z, y[:180], len(names))
    maps = fit_bases(blocks, y[:180], len(names), 0.4)
    weights, bias = collapse(maps, meta, blocks)
    assert weights.shape == (featurizer.n_features, len(names))
    # Unseen texts too: the folded char weights must undo the featurizer's char weight.
    unseen = featurizer.transform(texts[180:])
    for rows in (x, unseen):
        stacked = meta.scores(base_scores(maps, Blocks.of(rows, len(featurizer.word_idf), 0.6)))
        np.testing.assert_allclose(np.asarray(rows @ weights) + bias, stacked, atol=1e-4)


def test_trained_model_predicts_what_the_unfolded_stack_predicts(synthetic, monkeypatch):
    texts, labels = synthetic
    metas: list[stacking.Meta] = []
    real = stacking.fit_meta

    def spy(z, y, n_classes, start=None):
        meta = real(z, y, n_classes, start=start)
        metas.append(meta)
        return meta

    monkeypatch.setattr(stacking, "fit_meta", spy)
    model = train(texts, labels, target_precision=0.9, folds=3)
    y, names = _encode(labels)
    x = TextFeaturizer(model.featurizer.config).fit_transform(texts)  # what train() fitted on
    maps = fit_bases(model.blocks(x), y, len(names), model.c)
    probe = [*texts[:100], "vpn printer password", "completely unseen wording zzz", ""]
    stacked = metas[0].scores(base_scores(maps, model.blocks(model.featurizer.transform(probe))))
    np.testing.assert_allclose(model.decision_scores(probe), stacked, atol=1e-4)
    assert [p.label for p in model.predict_many(probe)] == [names[i] for i in stacked.argmax(axis=1)]


def test_threshold_figures_come_from_out_of_fold_meta_predictions(synthetic, monkeypatch):
    texts, labels = synthetic
    calls: list[tuple[int, bool]] = []
    real = stacking.fit_meta

    def spy(z, y, n_classes, start=None):
        calls.append((len(y), start is not None))
        return real(z, y, n_classes, start=start)

    monkeypatch.setattr(stacking, "fit_meta", spy)
    model = train(texts, labels, target_precision=0.9, folds=4)
    n = len(texts)
    # One meta-model on all out-of-fold base scores (the deployed one), then one per fold without it.
    assert calls[0] == (n, False)
    assert len(calls) == 5 and all(start and rows < n for rows, start in calls[1:])
    assert sum(n - rows for rows, _ in calls[1:]) == n  # every example held out exactly once
    assert model.metadata is not None and model.metadata.training is not None
    figures = model.metadata.training
    in_sample = np.mean([p.label == lab for p, lab in zip(model.predict_many(texts), labels, strict=True)])
    assert figures.accuracy < in_sample  # held-out figures, not the fitted model's view of its own data


def test_small_data_two_labels_and_rare_label():
    texts = [f"vpn wifi down {i}" for i in range(12)] + [f"password reset please {i}" for i in range(12)]
    labels = ["network"] * 12 + ["access"] * 12
    model = train(texts, labels, target_precision=0.9)
    assert model.predict("vpn wifi broken").label == "network"
    assert model.predict("reset my password").label == "access"
    # A label with two examples: two folds, and every fold still sees every label.
    rare = train([*texts, "printer jam", "printer toner"], [*labels, "hardware", "hardware"])
    assert rare.metadata is not None and rare.metadata.training is not None
    assert rare.metadata.training.folds == 2
    assert rare.predict("printer jam again").label == "hardware"
    # fit() on a label seen once has no out-of-fold scores: a single SVM, same interface.
    single = TicketClassifier().fit([*texts, "printer jam"], [*labels, "hardware"])
    assert single.predict("printer jam").label in {"hardware", "network", "access"}
    restored = TicketClassifier.from_bytes(single.to_bytes())
    assert restored.predict("vpn wifi") == single.predict("vpn wifi")
