"""The batch featurizer (``transform``, ``transform_stacked``) against a plain per-text reference."""

from __future__ import annotations

import math
import random
import re
import string
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest

from bench.bench_rules import make_tickets
from services.router.classification import TicketClassifier, feature_tables, train
from services.router.classification.features import TextFeaturizer, char_wb_ngrams
from services.router.classification.model import softmax
from services.router.classifiers.enrichment import ticket_text

ODD_TEXTS = [
    "",
    "   \n\t ",
    "a b c d e",  # only 1-char words: no word term, char n-grams all the same
    "x",
    "printer printer printer printer",  # repeated words
    "vpn vpn wifi vpn vpn",
    "vpn a wifi",  # the 1-char word is no token: "vpn wifi" is a bigram
    "vpn, wifi!",  # punctuation splits tokens, not bigrams
    "vpn\x1cwifi\nprinter\r\nlaptop",  # \x1c is whitespace for str.split
    "zzqx unseenword qqq vpnz",  # unseen words
    "Printer #4 isn't working!! (ticket-123) mail bob@corp.example, path C:\\tmp\\a_b.txt",
    "error_code 0x1f __init__ a_b 12 3 _ __",
    "Drucker geht nicht – bitte prüfen, Straße ÄÖÜ",  # not ASCII: the regex path
    "İstanbul ofisi VPN naïve café ﬁle",  # lowercasing changes lengths
    "password reset login login login account locked",
]


def reference_rows(featurizer: TextFeaturizer, texts: list[str]) -> np.ndarray:
    """Dense float64 rows from the definitions: sklearn's tokens, char_wb n-grams, tf-idf, L2 per block."""
    cfg = featurizer.config
    out = np.zeros((len(texts), featurizer.n_features))
    for r, text in enumerate(texts):
        lowered = text.lower()
        tokens = re.findall(r"(?u)\b\w\w+\b", lowered)
        terms = tokens + [f"{a} {b}" for a, b in pairwise(tokens)]
        grams = [g for w in lowered.split() for g in char_wb_ngrams(w, cfg.char_min_n, cfg.char_max_n)]
        blocks = (
            (terms, featurizer.word_index, featurizer.word_idf, 0, 1.0),
            (grams, featurizer.char_index, featurizer.char_idf, len(featurizer.word_idf), cfg.char_weight),
        )
        for found, index, idf, offset, weight in blocks:
            counts = Counter(index[t] for t in found if t in index)
            if counts:
                cols = np.array(list(counts))
                vals = np.array([(1 + math.log(c)) * float(idf[i]) for i, c in counts.items()])
                out[r, offset + cols] = weight * vals / np.linalg.norm(vals)
    return out


def assert_rows_match(matrix, expected: np.ndarray) -> None:
    assert matrix.shape == expected.shape
    assert matrix.dtype == np.float32
    for r in range(expected.shape[0]):
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        cols = matrix.indices[lo:hi]
        assert len(set(cols.tolist())) == len(cols), f"row {r} repeats a column"
        assert set(cols.tolist()) == set(np.flatnonzero(expected[r]).tolist()), f"row {r}"
        np.testing.assert_allclose(matrix.data[lo:hi], expected[r, cols], rtol=1e-5, atol=0)


def random_ascii(rng: random.Random, n: int) -> list[str]:
    alphabet = string.ascii_letters + string.digits + string.punctuation + " _\t\n\x0b\x0c\r\x1c\x1f"
    common = ["vpn", "wifi", "printer", "login", "password", "a", "b"]
    return [
        " ".join(
            rng.choice(common) if rng.random() < 0.4 else "".join(rng.choices(alphabet, k=rng.randint(1, 6)))
            for _ in range(rng.randint(0, 12))
        )
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def tickets() -> list[str]:
    return [ticket_text(s["subject"], s["description"]) for s in make_tickets(400, seed=5)]


@pytest.fixture(scope="module")
def fitted(synthetic, tickets) -> TextFeaturizer:
    featurizer = TextFeaturizer()
    featurizer.fit_transform([*synthetic[0], *tickets[:300], *random_ascii(random.Random(1), 200)])
    return featurizer


def probe_texts(synthetic, tickets) -> list[str]:
    return [*ODD_TEXTS, *synthetic[0][:40], *tickets[300:], *random_ascii(random.Random(2), 60)]


@pytest.mark.parametrize("batch", [1, 7, 500])
def test_transform_matches_reference_and_single_path(fitted, synthetic, tickets, batch):
    texts = probe_texts(synthetic, tickets)
    expected = reference_rows(fitted, texts)
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        assert_rows_match(fitted.transform(chunk), expected[start : start + batch])
    for text, row in zip(texts, expected, strict=True):
        idx, vals = fitted.transform_one(text)
        assert set(idx.tolist()) == set(np.flatnonzero(row).tolist())
        np.testing.assert_allclose(vals, row[idx], rtol=1e-5, atol=0)


def test_transform_of_a_fresh_model_and_reversed_batches(fitted, synthetic, tickets):
    # A loaded model starts with an empty word cache; texts must not leak into their neighbours.
    loaded = TextFeaturizer.from_arrays(fitted.config, fitted.to_arrays())
    texts = probe_texts(synthetic, tickets)[::-1]
    expected = reference_rows(fitted, texts)
    assert_rows_match(loaded.transform(texts), expected)
    assert_rows_match(loaded.transform(texts), expected)  # cached now
    assert loaded.transform([]).shape == (0, fitted.n_features)


def test_stacked_rows_are_the_blocks(fitted, synthetic, tickets):
    texts = probe_texts(synthetic, tickets)[:50]
    stacked = fitted.transform_stacked(texts).toarray()
    expected = reference_rows(fitted, texts)
    n_word = len(fitted.word_idf)
    np.testing.assert_allclose(stacked[:50, :n_word], expected[:, :n_word], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stacked[50:, n_word:], expected[:, n_word:], rtol=1e-5, atol=1e-7)
    assert not stacked[:50, n_word:].any() and not stacked[50:, :n_word].any()


def test_word_cache_stays_bounded(fitted, synthetic, tickets, monkeypatch):
    monkeypatch.setattr(feature_tables, "MAX_CACHED_WORDS", 5)
    loaded = TextFeaturizer.from_arrays(fitted.config, fitted.to_arrays())
    texts = probe_texts(synthetic, tickets)
    expected = reference_rows(loaded, texts)
    for start in range(0, len(texts), 25):  # past the bound, words get rows for one call only
        assert_rows_match(loaded.transform(texts[start : start + 25]), expected[start : start + 25])
    for text, row in zip(texts[:30], expected[:30], strict=True):
        idx, _ = loaded.transform_one(text)
        assert set(idx.tolist()) == set(np.flatnonzero(row).tolist())
    assert loaded._rows is not None and len(loaded._rows.rows) == 5
    monkeypatch.setattr(feature_tables, "MAX_CACHED_GRAMS", 0)
    again = TextFeaturizer.from_arrays(fitted.config, fitted.to_arrays())
    assert_rows_match(again.transform(texts), expected)
    assert again._rows is not None and not again._rows.rows


def test_bigram_whose_words_are_not_terms():
    # fit_transform never makes such a vocabulary (a bigram is rarer than its words); a hand-made one.
    featurizer = TextFeaturizer()
    featurizer.word_index = {"vpn wifi": 0, "printer": 1, "wifi printer": 2}
    featurizer.word_idf = np.array([1.5, 2.0, 1.2], dtype=np.float32)
    featurizer.char_index = {" vp": 0, "pn ": 1}
    featurizer.char_idf = np.array([1.1, 1.3], dtype=np.float32)
    texts = ["vpn wifi printer", "vpn. wifi; printer vpn wifi", "wifi vpn", "vpn", "wifi\nprinter"]
    assert_rows_match(featurizer.transform(texts), reference_rows(featurizer, texts))


@pytest.fixture(scope="module")
def model(synthetic) -> TicketClassifier:
    return train(synthetic[0], synthetic[1], folds=3)


def test_predictions_equal_the_dense_reference(model, synthetic, tickets):
    texts = [*probe_texts(synthetic, tickets), *synthetic[0][-60:]]
    weights, intercept = model._weights.astype(np.float64), model._intercept.astype(np.float64)
    scores = reference_rows(model.featurizer, texts) @ weights + intercept
    np.testing.assert_allclose(model.decision_scores(texts), scores, atol=1e-4)
    joined = np.asarray(model.featurizer.transform(texts) @ model._weights) + model._intercept
    np.testing.assert_allclose(model.decision_scores(texts), joined, atol=1e-5)
    assert model.metadata is not None
    proba = softmax(scores, model.metadata.temperature)
    for batch in (1, 25, len(texts)):
        preds = [p for s in range(0, len(texts), batch) for p in model.predict_many(texts[s : s + batch])]
        assert [p.label for p in preds] == [model.labels[i] for i in proba.argmax(axis=1)]
        np.testing.assert_allclose([p.confidence for p in preds], proba.max(axis=1), atol=1e-5)
        assert all(p.above_threshold == (p.confidence >= model.threshold) for p in preds)
        assert all(type(p.confidence) is float and type(p.above_threshold) is bool for p in preds)
    singles = [model.predict(t) for t in texts]
    assert [p.label for p in singles] == [p.label for p in model.predict_many(texts)]
