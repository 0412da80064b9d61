from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from services.router.classification import (
    FORMAT_VERSION,
    TicketClassifier,
    choose_threshold,
    evaluate,
    train,
)
from services.router.classification.evaluation import report_from_predictions
from services.router.classification.features import TextFeaturizer, char_wb_ngrams


@pytest.fixture(scope="module")
def trained(synthetic):
    texts, labels = synthetic
    stages: list[tuple[str, float]] = []
    model = train(texts, labels, target_precision=0.9, folds=4, progress=lambda s, f: stages.append((s, f)))
    return model, stages


def test_char_ngrams_match_sklearn():
    from sklearn.feature_extraction.text import CountVectorizer

    analyzer = CountVectorizer(analyzer="char_wb", ngram_range=(3, 5)).build_analyzer()
    for word in ["a", "ab", "printer", "öö"]:
        assert char_wb_ngrams(word, 3, 5) == analyzer(word)


def test_single_text_features_equal_batch_rows(synthetic):
    texts, _ = synthetic
    featurizer = TextFeaturizer()
    matrix = featurizer.fit_transform(texts[:300])
    for i in (0, 17, 299):
        idx, vals = featurizer.transform_one(texts[i])
        row = matrix[i].toarray().ravel()
        assert set(idx) == set(np.flatnonzero(row))
        np.testing.assert_allclose(row[idx], vals, rtol=1e-5)
        expected_norm = np.sqrt(1 + featurizer.config.char_weight**2)  # two unit blocks, one weighted
        np.testing.assert_allclose(np.linalg.norm(row), expected_norm, rtol=1e-5)


def test_train_records_metadata_and_progress(trained, synthetic):
    model, stages = trained
    meta = model.metadata
    assert meta.labels == ["access", "hardware", "network"]
    assert meta.n_examples == len(synthetic[0])
    assert meta.format_version == FORMAT_VERSION
    assert meta.training.folds == 4
    assert 0.6 < meta.training.accuracy < 1.0  # overlapping classes: neither trivial nor broken
    assert stages[0][0] == "features" and stages[-1] == ("done", 1.0)
    assert [f for _, f in stages] == sorted(f for _, f in stages)


def test_threshold_reaches_target_precision_out_of_fold(trained):
    model, _ = trained
    figures = model.metadata.training
    assert figures.target_reached
    assert figures.precision_at_threshold >= 0.9
    assert 0 < figures.coverage_at_threshold < 1
    assert model.threshold > 0


def test_choose_threshold_is_lowest_reaching_target():
    conf = [0.99, 0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [True, True, True, False, True, False]
    # precision at >=0.8: 3/3; >=0.7: 3/4; >=0.6: 4/5 = 0.8; >=0.5: 4/6
    assert choose_threshold(conf, correct, 0.8) == (0.6, True)
    assert choose_threshold(conf, correct, 0.9) == (0.8, True)
    threshold, reached = choose_threshold([0.7, 0.6], [False, False], 0.5)
    assert not reached and threshold > 0.7


def test_choose_threshold_counts_ties_together():
    # Both 0.8 tickets are covered by threshold 0.8, so their precision is 1/2 as a group.
    assert choose_threshold([0.9, 0.8, 0.8], [True, True, False], 0.75) == (0.9, True)


def test_evaluation_figures_by_hand():
    report = report_from_predictions(
        predicted=["a", "a", "b", "b"], confidences=[0.9, 0.4, 0.8, 0.3], labels=["a", "b", "b", "b"],
        threshold=0.5,
    )
    assert report.accuracy == 0.75
    assert report.per_class["a"].precision == 0.5 and report.per_class["a"].recall == 1.0
    assert report.per_class["b"].precision == 1.0 and report.per_class["b"].recall == pytest.approx(2 / 3)
    assert report.per_class["b"].support == 3
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert report.coverage == 0.5 and report.precision_at_threshold == 1.0
    assert '"coverage":0.5' in report.model_dump_json()
    nothing = report_from_predictions(["a"], [0.1], ["a"], 0.5)
    assert nothing.coverage == 0 and nothing.precision_at_threshold is None


def test_evaluate_uses_model_threshold(trained, synthetic):
    model, _ = trained
    texts, labels = synthetic
    report = evaluate(model, texts[:90], labels[:90])
    preds = model.predict_many(texts[:90])
    assert report.threshold == model.threshold
    assert report.coverage == pytest.approx(np.mean([p.confidence >= model.threshold for p in preds]))
    with pytest.raises(ValueError):
        evaluate(model, texts[:2], labels[:1])


def test_predict_single_matches_batch(trained, synthetic):
    model, _ = trained
    texts = [*synthetic[0][:50], "", "completely unseen wording zzz"]
    batch = model.predict_many(texts)
    for text, b in zip(texts, batch, strict=True):
        one = model.predict(text)
        assert one.label == b.label
        assert one.confidence == pytest.approx(b.confidence, abs=1e-5)
        assert one.above_threshold == (one.confidence >= model.threshold)
        assert 0 < one.confidence <= 1


def test_serialisation_round_trip(trained, synthetic):
    model, _ = trained
    restored = TicketClassifier.from_bytes(model.to_bytes())
    assert restored.metadata == model.metadata
    texts = synthetic[0][:100]
    assert [p.label for p in restored.predict_many(texts)] == [p.label for p in model.predict_many(texts)]
    assert [restored.predict(t) for t in texts] == [model.predict(t) for t in texts]


def test_from_bytes_rejects_garbage_and_other_versions(trained):
    model, _ = trained
    with pytest.raises(ValueError):
        TicketClassifier.from_bytes(b"not a model")
    raw = model.to_bytes()
    other = TicketClassifier.from_bytes(raw)
    other.metadata = other.metadata.model_copy(update={"format_version": FORMAT_VERSION + 1})
    with pytest.raises(ValueError, match="format version"):
        TicketClassifier.from_bytes(other.to_bytes())


def test_training_input_errors():
    with pytest.raises(ValueError, match="two distinct labels"):
        train(["a b", "c d"], ["x", "x"])
    with pytest.raises(ValueError, match="at least 2 examples"):
        train(["a b", "c d", "e f"], ["x", "x", "y"])
    with pytest.raises(RuntimeError):
        TicketClassifier().predict("hello")


def test_real_sample_held_out(real_sample):
    texts, labels = real_sample
    tr_x, te_x, tr_y, te_y = train_test_split(texts, labels, test_size=0.25, stratify=labels, random_state=0)
    model = train(tr_x, tr_y, folds=3)
    report = evaluate(model, te_x, te_y)
    # 3,000 training tickets only: far below full-data figures, far above chance (8 classes).
    assert report.accuracy > 0.7
    assert report.coverage > 0.2
    assert report.precision_at_threshold is not None and report.precision_at_threshold > 0.85
