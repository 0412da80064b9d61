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
from services.router.classification.model import BATCH_FROM, TrainingFigures
from services.router.classification.training import DEFAULT_BOUND_Z, wilson_lower_bound


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


def test_threshold_reaches_target_precision_out_of_fold(trained, synthetic):
    model, _ = trained
    figures = model.metadata.training
    assert figures.target_reached
    assert figures.bound_z == 0.0  # default: the point estimate reaches the target
    assert figures.precision_at_threshold == figures.precision_lower_bound >= 0.9
    assert 0 < figures.coverage_at_threshold < 1
    assert model.threshold > 0
    # With a Wilson margin the bound reaches the target: same folds and temperature, stricter cut.
    strict = train(synthetic[0], synthetic[1], target_precision=0.9, folds=4, bound_z=DEFAULT_BOUND_Z)
    assert strict.metadata is not None and model.metadata is not None
    tight = strict.metadata.training
    assert tight is not None and figures is not None
    assert tight.precision_at_threshold is not None and tight.precision_lower_bound is not None
    assert tight.bound_z == DEFAULT_BOUND_Z
    assert tight.precision_at_threshold > tight.precision_lower_bound >= 0.9
    assert strict.metadata.temperature == model.metadata.temperature
    assert strict.threshold >= model.threshold
    assert tight.coverage_at_threshold <= figures.coverage_at_threshold


def test_inner_folds_scale_c_to_the_final_fit(synthetic, monkeypatch):
    from services.router.classification import stacking

    seen: list[tuple[int, float]] = []
    real = stacking.fit_bases

    def spy(blocks, y, n_classes, c):
        seen.append((blocks.word.shape[0], c))
        return real(blocks, y, n_classes, c)

    monkeypatch.setattr(stacking, "fit_bases", spy)
    train(synthetic[0], synthetic[1], folds=4, c=0.5)
    n = len(synthetic[0])
    assert len(seen) == 4  # the final fit goes through the model, with c itself
    for rows, c in seen:
        assert rows < n and c == pytest.approx(0.5 * n / rows)


def test_training_figures_of_older_models_still_load():
    old = {
        "folds": 5,
        "accuracy": 0.86,
        "macro_f1": 0.85,
        "target_precision": 0.95,
        "target_reached": True,
        "coverage_at_threshold": 0.77,
        "precision_at_threshold": 0.95,
    }
    figures = TrainingFigures.model_validate(old)
    assert figures.bound_z == 0.0 and figures.precision_lower_bound is None


def test_choose_threshold_is_lowest_reaching_target():
    conf = [0.99, 0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [True, True, True, False, True, False]
    # precision at >=0.8: 3/3; >=0.7: 3/4; >=0.6: 4/5 = 0.8; >=0.5: 4/6
    assert choose_threshold(conf, correct, 0.8) == (0.6, True)
    assert choose_threshold(conf, correct, 0.9) == (0.8, True)
    threshold, reached = choose_threshold([0.7, 0.6], [False, False], 0.5)
    assert not reached and threshold > 0.7


def test_wilson_lower_bound_by_hand():
    # 90/100 at z=1.96: the textbook two-sided 95 % Wilson interval is [0.8256, 0.9448].
    assert wilson_lower_bound(np.array(90), np.array(100), 1.96) == pytest.approx(0.82564, abs=1e-5)
    assert wilson_lower_bound(np.array([3, 1]), np.array([4, 1]), 0.0).tolist() == [0.75, 1.0]
    bounds = wilson_lower_bound(np.array([95, 950, 9500]), np.array([100, 1000, 10000]), 1.645)
    assert np.all(bounds < 0.95) and np.all(np.diff(bounds) > 0)  # the margin shrinks with more evidence


def test_choose_threshold_with_bound_needs_evidence():
    conf = [0.99, 0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [True, True, True, False, True, False]
    # Three right out of three has a lower bound of 0.75 at z=1, below 0.8: nothing is safe to route.
    threshold, reached = choose_threshold(conf, correct, 0.8, z=1.0)
    assert not reached and threshold > 0.99
    with pytest.raises(ValueError, match="z must be"):
        choose_threshold(conf, correct, 0.8, z=-1.0)


@pytest.mark.parametrize("z", [0.0, 1.0, DEFAULT_BOUND_Z])
def test_choose_threshold_is_lowest_cut_whose_bound_reaches_target(z):
    rng = np.random.default_rng(3)
    conf = rng.random(5000).round(3)  # rounding makes ties
    correct = rng.random(5000) < 0.55 + 0.45 * conf  # higher confidence, more often right
    threshold, reached = choose_threshold(conf, correct, 0.9, z=z)
    assert reached

    def bound_at(t: float) -> float:
        covered = conf >= t
        return float(wilson_lower_bound(np.array(correct[covered].sum()), np.array(covered.sum()), z))

    assert bound_at(threshold) >= 0.9
    assert bound_at(conf[conf < threshold].max()) < 0.9  # the next cut down fails
    if z > 0:
        assert threshold > choose_threshold(conf, correct, 0.9)[0]  # stricter than the point estimate


def test_choose_threshold_counts_ties_together():
    # Both 0.8 tickets are covered by threshold 0.8, so their precision is 1/2 as a group.
    assert choose_threshold([0.9, 0.8, 0.8], [True, True, False], 0.75) == (0.9, True)


def test_evaluation_figures_by_hand():
    report = report_from_predictions(
        predicted=["a", "a", "b", "b"],
        confidences=[0.9, 0.4, 0.8, 0.3],
        labels=["a", "b", "b", "b"],
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
    assert other.metadata is not None
    other.metadata = other.metadata.model_copy(update={"format_version": FORMAT_VERSION + 1})
    with pytest.raises(ValueError, match="format version"):
        TicketClassifier.from_bytes(other.to_bytes())


def test_training_input_errors():
    with pytest.raises(ValueError, match="two distinct labels"):
        train(["a b", "c d"], ["x", "x"])
    with pytest.raises(ValueError, match="at least 2 examples"):
        train(["a b", "c d", "e f"], ["x", "x", "y"])
    with pytest.raises(ValueError, match="bound_z"):
        train(["a b", "c d", "e f", "g h"], ["x", "x", "y", "y"], bound_z=-1)
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


def test_a_few_texts_take_the_single_path_with_the_batch_answers(trained, synthetic):
    model, _ = trained
    texts = synthetic[0][:BATCH_FROM]
    batch = model.predict_many(texts)  # the batch path
    for n in range(1, BATCH_FROM):
        few = model.predict_many(texts[:n])
        assert few == [model.predict(text) for text in texts[:n]]
        assert [p.label for p in few] == [p.label for p in batch[:n]]
        assert [p.confidence for p in few] == pytest.approx([p.confidence for p in batch[:n]], abs=1e-5)
    assert model.predict_many([]) == []


def test_a_batch_flags_above_threshold_only_at_or_above_the_threshold(trained, synthetic):
    # Batch confidences are float32: compared with the threshold they rounded it to float32 too,
    # so a confidence just below it (or, target not reached, the threshold just above every
    # cross-validated confidence) was flagged above it and routed, and the single path disagreed.
    model, _ = trained
    texts = synthetic[0][:20]
    first = model.predict_many(texts)[0].confidence
    original = model.metadata
    assert original is not None
    model.metadata = original.model_copy(update={"threshold": float(np.nextafter(first, 2.0))})
    try:
        batch = model.predict_many(texts)
        assert [p.above_threshold for p in batch] == [p.confidence >= model.threshold for p in batch]
        assert not batch[0].above_threshold
    finally:
        model.metadata = original


def test_a_blob_missing_an_array_or_its_metadata_is_a_value_error(trained):
    # A KeyError or AttributeError escaped: the routers' reload (which skips a model that does not
    # load on ValueError) failed as a whole every poll, and the dry run answered 500.
    import io

    import orjson

    model, _ = trained
    with np.load(io.BytesIO(model.to_bytes())) as archive:
        arrays = {k: archive[k] for k in archive.files}

    def blob(**changes: np.ndarray | None) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: v for k, v in {**arrays, **changes}.items() if v is not None})
        return buf.getvalue()

    def header(value: object) -> np.ndarray:
        return np.frombuffer(orjson.dumps(value), dtype=np.uint8)

    for raw in (
        blob(weights=None),
        blob(word_terms=None),
        blob(header=header({"magic": "ticket-classifier"})),
        blob(header=header({"magic": "ticket-classifier", "metadata": []})),
    ):
        with pytest.raises(ValueError):
            TicketClassifier.from_bytes(raw)


def test_a_blob_whose_numbers_do_not_fit_together_is_refused_not_loaded(trained):
    # Each of these loaded: an intercept of another length then failed every prediction on the
    # router's hot path (or, of length 1, broadcast into wrong scores); NaN weights or a temperature
    # of 0 gave every ticket a NaN confidence, a negative one the least likely label.
    import io

    import orjson

    model, _ = trained
    with np.load(io.BytesIO(model.to_bytes())) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = orjson.loads(arrays["header"].tobytes())

    def blob(metadata: dict[str, object] | None = None, **changes: np.ndarray) -> bytes:
        if metadata is not None:
            raw = orjson.dumps({**header, "metadata": {**header["metadata"], **metadata}})
            changes["header"] = np.frombuffer(raw, dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **{**arrays, **changes})
        return buf.getvalue()

    weights, intercept = arrays["weights"], arrays["intercept"]
    nan_weights = weights.copy()
    nan_weights[0, 0] = np.nan
    labels = header["metadata"]["labels"]
    for raw in (
        blob(intercept=intercept[:1]),
        blob(intercept=intercept[:-1]),
        blob(weights=nan_weights),
        blob(word_idf=np.full_like(arrays["word_idf"], np.inf)),
        blob({"temperature": 0.0}),
        blob({"temperature": -1.0}),
        blob({"labels": [labels[0], *labels[:-1]]}),
    ):
        with pytest.raises(ValueError, match="corrupt model"):
            TicketClassifier.from_bytes(raw)
    assert TicketClassifier.from_bytes(blob()).labels == labels  # the blob itself loads
