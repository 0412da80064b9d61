"""TF-IDF features (word 1-2 grams + char_wb n-grams) with a fast single-text path.

Written instead of using sklearn's ``TfidfVectorizer`` for two reasons: routing calls
``predict`` one ticket at a time, where sklearn's per-call overhead alone eats most of the
200 µs budget; and char_wb n-grams depend only on the word, so caching them per word makes
training and prediction several times faster. Semantics follow sklearn's: lowercase,
``\\b\\w\\w+\\b`` word tokens, smooth idf, sublinear tf, L2 norm per block.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_EMPTY = np.zeros(0, dtype=np.int64)
# Unseen words met at prediction time are cached too, but only up to this many.
_MAX_CACHED_WORDS = 500_000

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class FeatureConfig:
    word_min_df: int = 2
    char_min_n: int = 3
    char_max_n: int = 5
    char_min_df: int = 2
    char_weight: float = 0.6  # weight of the char block relative to the word block

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def word_terms(lowered: str) -> list[str]:
    tokens = _TOKEN.findall(lowered)
    return tokens + [f"{a} {b}" for a, b in pairwise(tokens)]


def char_wb_ngrams(word: str, min_n: int, max_n: int) -> list[str]:
    """sklearn's char_wb n-grams of one whitespace-separated word."""
    padded = f" {word} "
    out: list[str] = []
    for n in range(min_n, max_n + 1):
        if len(padded) <= n:  # a short word counts once, as a whole
            out.append(padded)
            break
        out.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return out


def _counts(doc_ids: Sequence[IntArray], n_cols: int) -> sp.csr_matrix:
    indptr = np.zeros(len(doc_ids) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in doc_ids], out=indptr[1:])
    indices = np.concatenate(list(doc_ids)) if len(doc_ids) else _EMPTY
    data = np.ones(len(indices), dtype=np.float32)
    m = sp.csr_matrix((data, indices, indptr), shape=(len(doc_ids), n_cols))
    m.sum_duplicates()
    return m


def _prune(counts: sp.csr_matrix, min_df: int) -> tuple[IntArray, FloatArray, IntArray]:
    """Drop rare columns; returns (kept old ids, idf of kept, old -> new id map with -1 = dropped)."""
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    kept = np.flatnonzero(df >= min_df)
    remap = np.full(counts.shape[1], -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    idf = (np.log((1 + counts.shape[0]) / (1 + df[kept])) + 1).astype(np.float32)
    return kept, idf, remap


def _tfidf(counts: sp.csr_matrix, idf: FloatArray, weight: float) -> sp.csr_matrix:
    m = counts.astype(np.float32, copy=True)
    m.data = (1 + np.log(m.data)) * idf[m.indices]
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1
    m.data *= np.repeat(weight / norms, np.diff(m.indptr)).astype(np.float32)
    return m


class TextFeaturizer:
    """Maps texts to L2-normalised TF-IDF rows: [word block | char block * char_weight]."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.word_index: dict[str, int] = {}
        self.char_index: dict[str, int] = {}
        self.word_idf: FloatArray = np.zeros(0, dtype=np.float32)
        self.char_idf: FloatArray = np.zeros(0, dtype=np.float32)
        self._word_cache: dict[str, IntArray] = {}

    @property
    def n_features(self) -> int:
        return len(self.word_idf) + len(self.char_idf)

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        cfg = self.config
        lowered = [t.lower() for t in texts]
        # Word block: assign provisional ids to every term, then prune by document frequency.
        vocab: dict[str, int] = {}
        word_docs = [
            np.fromiter((vocab.setdefault(t, len(vocab)) for t in word_terms(d)), np.int64) for d in lowered
        ]
        word_counts = _counts(word_docs, len(vocab))
        kept, self.word_idf, _ = _prune(word_counts, cfg.word_min_df)
        terms = list(vocab)
        self.word_index = {terms[i]: n for n, i in enumerate(kept)}
        word_counts = word_counts[:, kept]
        # Char block: n-grams computed once per distinct word.
        grams: dict[str, int] = {}
        per_word: dict[str, IntArray] = {}
        char_docs = []
        for d in lowered:
            parts = []
            for w in d.split():
                ids = per_word.get(w)
                if ids is None:
                    ngrams = char_wb_ngrams(w, cfg.char_min_n, cfg.char_max_n)
                    ids = np.fromiter((grams.setdefault(g, len(grams)) for g in ngrams), np.int64)
                    per_word[w] = ids
                parts.append(ids)
            char_docs.append(np.concatenate(parts) if parts else _EMPTY)
        char_counts = _counts(char_docs, len(grams))
        kept, self.char_idf, remap = _prune(char_counts, cfg.char_min_df)
        gram_list = list(grams)
        self.char_index = {gram_list[i]: n for n, i in enumerate(kept)}
        char_counts = char_counts[:, kept]
        self._word_cache = {}
        for w, ids in per_word.items():
            new = remap[ids]
            self._word_cache[w] = new[new >= 0]
        return self._combine(word_counts, char_counts)

    def _combine(self, word_counts: sp.csr_matrix, char_counts: sp.csr_matrix) -> sp.csr_matrix:
        return sp.hstack(
            [
                _tfidf(word_counts, self.word_idf, 1.0),
                _tfidf(char_counts, self.char_idf, self.config.char_weight),
            ],
            format="csr",
        )

    def _word_ids(self, lowered: str) -> IntArray:
        index = self.word_index
        return np.fromiter((i for i in map(index.get, word_terms(lowered)) if i is not None), np.int64)

    def _char_ids(self, lowered: str) -> IntArray:
        cache = self._word_cache
        parts = []
        for w in lowered.split():
            ids = cache.get(w)
            if ids is None:
                cfg = self.config
                found = map(self.char_index.get, char_wb_ngrams(w, cfg.char_min_n, cfg.char_max_n))
                ids = np.fromiter((i for i in found if i is not None), np.int64)
                if len(cache) < _MAX_CACHED_WORDS:
                    cache[w] = ids
            parts.append(ids)
        return np.concatenate(parts) if parts else _EMPTY

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        lowered = [t.lower() for t in texts]
        word_counts = _counts([self._word_ids(d) for d in lowered], len(self.word_idf))
        char_counts = _counts([self._char_ids(d) for d in lowered], len(self.char_idf))
        return self._combine(word_counts, char_counts)

    def transform_one(self, text: str) -> tuple[IntArray, FloatArray]:
        """Sparse (column indices, values) of one text; same numbers as a ``transform`` row."""
        lowered = text.lower()
        out_idx: list[IntArray] = []
        out_val: list[FloatArray] = []
        blocks = (
            (self._word_ids(lowered), self.word_idf, 1.0, 0),
            (self._char_ids(lowered), self.char_idf, self.config.char_weight, len(self.word_idf)),
        )
        for ids, idf, weight, offset in blocks:
            if len(ids) == 0:
                continue
            cols, counts = np.unique(ids, return_counts=True)
            vals = (1 + np.log(counts.astype(np.float32))) * idf[cols]
            vals *= weight / np.sqrt(np.dot(vals, vals))
            out_idx.append(cols + offset)
            out_val.append(vals)
        if not out_idx:
            return _EMPTY, np.zeros(0, dtype=np.float32)
        return np.concatenate(out_idx), np.concatenate(out_val)

    # Serialisation: plain arrays only, so loading a model never unpickles anything.
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "word_terms": _pack_terms(self.word_index),
            "char_terms": _pack_terms(self.char_index),
            "word_idf": self.word_idf,
            "char_idf": self.char_idf,
        }

    @classmethod
    def from_arrays(cls, config: FeatureConfig, arrays: dict[str, np.ndarray]) -> TextFeaturizer:
        f = cls(config)
        f.word_index = {t: i for i, t in enumerate(_unpack_terms(arrays["word_terms"]))}
        f.char_index = {t: i for i, t in enumerate(_unpack_terms(arrays["char_terms"]))}
        f.word_idf = arrays["word_idf"].astype(np.float32)
        f.char_idf = arrays["char_idf"].astype(np.float32)
        if len(f.word_index) != len(f.word_idf) or len(f.char_index) != len(f.char_idf):
            raise ValueError("corrupt model: vocabulary and idf sizes differ")
        return f


def _pack_terms(index: dict[str, int]) -> NDArray[np.uint8]:
    # Terms never contain "\n" (words are whitespace-split), so it is a safe separator.
    return np.frombuffer("\n".join(index).encode("utf-8"), dtype=np.uint8)


def _unpack_terms(packed: np.ndarray) -> list[str]:
    text = packed.tobytes().decode("utf-8")
    return text.split("\n") if text else []
