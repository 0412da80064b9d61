"""TF-IDF features (word 1-2 grams + char_wb n-grams) with fast single-text and batch paths.

Written instead of using sklearn's ``TfidfVectorizer`` for two reasons: routing calls
``predict`` one ticket at a time, where sklearn's per-call overhead alone eats most of the
200 µs budget; and char_wb n-grams depend only on the word, so caching them per word makes
training and prediction several times faster. Batches (``predict_many``) are counted as a whole,
in a few C loops (``transform_stacked``). Semantics follow sklearn's: lowercase,
``\\b\\w\\w+\\b`` word tokens, smooth idf, sublinear tf, L2 norm per block.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import chain, pairwise, repeat
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from services.router.classification.feature_tables import (
    EMPTY,
    BigramTable,
    FeatureRows,
    FloatArray,
    Int32Array,
    IntArray,
)

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
# In ASCII text \w is [a-zA-Z0-9_]: blanking every other non-space character leaves the tokens
# (and 1-char runs) between whitespace, which str.split finds faster than the regex.
_BLANK_NON_WORD = str.maketrans(
    {c: " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_" or chr(c).isspace())}
)


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
    return _terms_of(_TOKEN.findall(lowered))


def _terms_of(tokens: list[str]) -> list[str]:
    """The word terms of a text's tokens: each token, then each pair of neighbours."""
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
    indices = np.concatenate(list(doc_ids)) if len(doc_ids) else EMPTY
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


def _word_runs(lowered: str, words: list[str]) -> list[str]:
    """The tokens of ``_TOKEN`` in a text, and in ASCII text its 1-char runs of word characters too.

    ``words`` is ``lowered.split()``, the tokens too when the text has no punctuation."""
    if not lowered.isascii():
        return _TOKEN.findall(lowered)
    blanked = lowered.translate(_BLANK_NON_WORD)
    return words if blanked == lowered else blanked.split()


# A batch's tokens as the batch path reads them, per text: its lower-cased whitespace-separated
# words (for char n-grams) and ``_word_runs`` (for word terms; in ASCII text, its runs of word
# characters).
BatchTokens = tuple[list[list[str]], list[list[str]]]


def batch_tokens(texts: Sequence[str]) -> BatchTokens:
    """The tokens ``transform_stacked`` reads of the texts: computed once, they serve every model
    of a batch and the urgency scan (``scan_text``'s ``ascii_words``)."""
    lowered = [t.lower() for t in texts]
    words = [d.split() for d in lowered]
    return words, list(map(_word_runs, lowered, words))


def _normalise_rows(m: sp.csr_matrix, row_norms: FloatArray) -> None:
    """Scales each non-empty row of ``m`` in place to the given L2 norm."""
    lengths = np.diff(m.indptr)
    filled = lengths > 0
    sums = np.ones(len(lengths), dtype=np.float32)
    if len(m.data):
        sums[filled] = np.add.reduceat(m.data * m.data, m.indptr[:-1][filled])
    m.data *= np.repeat(row_norms / np.sqrt(sums), lengths)


def _side_by_side(stacked: sp.csr_matrix) -> sp.csr_matrix:
    """Rows i and n + i of a 2n-row matrix, whose columns do not overlap, joined as row i."""
    ptr = stacked.indptr
    n = (len(ptr) - 1) // 2
    lengths = np.diff(ptr)
    first = lengths[:n]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(first + lengths[n:], out=indptr[1:])
    # Where each stored value goes: its text's row, the char part after the word part.
    shift = np.concatenate([indptr[:-1] - ptr[:n], indptr[:-1] + first - ptr[n:-1]])
    dest = np.arange(len(stacked.data)) + np.repeat(shift, lengths)
    data = np.empty_like(stacked.data)
    data[dest] = stacked.data
    indices = np.empty_like(stacked.indices)
    indices[dest] = stacked.indices
    return sp.csr_matrix((data, indices, indptr), shape=(n, stacked.shape[1]))


class TextFeaturizer:
    """Maps texts to L2-normalised TF-IDF rows: [word block | char block * char_weight]."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.word_index: dict[str, int] = {}
        self.char_index: dict[str, int] = {}
        self.word_idf: FloatArray = np.zeros(0, dtype=np.float32)
        self.char_idf: FloatArray = np.zeros(0, dtype=np.float32)
        self._bigrams: BigramTable | None = None
        self._rows: FeatureRows | None = None

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
            char_docs.append(np.concatenate(parts) if parts else EMPTY)
        char_counts = _counts(char_docs, len(grams))
        kept, self.char_idf, remap = _prune(char_counts, cfg.char_min_df)
        gram_list = list(grams)
        self.char_index = {gram_list[i]: n for n, i in enumerate(kept)}
        char_counts = char_counts[:, kept]
        self._bigrams = None
        kept_ids = [new[new >= 0] for new in map(remap.__getitem__, per_word.values())]
        self._rows = FeatureRows(self.word_idf, self.char_idf, list(per_word), kept_ids)
        return self._combine(word_counts, char_counts)

    def _combine(self, word_counts: sp.csr_matrix, char_counts: sp.csr_matrix) -> sp.csr_matrix:
        return sp.hstack(
            [
                _tfidf(word_counts, self.word_idf, 1.0),
                _tfidf(char_counts, self.char_idf, self.config.char_weight),
            ],
            format="csr",
        )

    def _new_grams(self, word: str) -> IntArray:
        cfg = self.config
        found = map(self.char_index.get, char_wb_ngrams(word, cfg.char_min_n, cfg.char_max_n))
        return np.fromiter((i for i in found if i is not None), np.int64)

    def _feature_rows(self) -> FeatureRows:
        table = self._rows
        if table is None:
            table = self._rows = FeatureRows(self.word_idf, self.char_idf)
        return table

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The rows ``fit_transform`` would give these texts (to float32 rounding). Column indices
        within a row are not sorted (that would add a third); ``sort_indices()`` where it matters."""
        return _side_by_side(self.transform_stacked(texts))

    def transform_stacked(self, texts: Sequence[str], tokens: BatchTokens | None = None) -> sp.csr_matrix:
        """``transform`` with each text's blocks on two rows: row i holds the word block of text i
        and row n + i its weighted char block, in the same columns. ``x @ w`` then scores a text as
        the sum of its two rows' products, with no joining of the blocks.

        The whole batch is counted at once, in C loops: each token is looked up once, bigrams are
        found by the ids of their words (``BigramTable``), and one sparse product turns the word
        terms and whitespace words met in each text into both blocks' counts (``FeatureRows``).
        ``tokens``: ``batch_tokens(texts)``, when the caller has them.
        """
        words, runs = batch_tokens(texts) if tokens is None else tokens
        n = len(words)
        terms, term_ptr = self._term_occurrences(runs)
        word_ptr = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.fromiter(map(len, words), np.int32, n), out=word_ptr[1:])
        table = self._feature_rows()
        with table.lock:  # until the product: the rows of uncached words are for this call only
            rows, n_rows = table.resolve(list(chain.from_iterable(words)), self._new_grams)
            occurrences = sp.csr_matrix(
                (
                    np.ones(len(terms) + len(rows), dtype=np.float32),
                    np.concatenate([terms, rows]),
                    np.concatenate([term_ptr, word_ptr[1:] + np.int32(len(terms))]),
                ),
                shape=(2 * n, n_rows),
            )
            x: sp.csr_matrix = occurrences @ table.matrix(n_rows)
        np.log(x.data, out=x.data)  # sublinear tf: 1 + log(count)
        x.data += 1
        x.data *= table.idf[x.indices]
        _normalise_rows(x, np.repeat(np.array([1, self.config.char_weight], dtype=np.float32), n))
        return x

    def _term_occurrences(self, runs: list[list[str]]) -> tuple[Int32Array, Int32Array]:
        """The word-term ids met in the texts (given as ``_word_runs``), repeats included, and where
        each text's ids start."""
        n_terms = len(self.word_idf)
        bigrams = self._bigrams
        if bigrams is None:
            bigrams = self._bigrams = BigramTable.of(self.word_index)
        flat = list(chain.from_iterable(runs))
        ids = np.fromiter(map(self.word_index.get, flat, repeat(-1)), np.int64, len(flat))
        if bigrams.extra:
            for k in np.flatnonzero(ids < 0).tolist():
                ids[k] = bigrams.extra.get(flat[k], -1)
        text = np.repeat(np.arange(len(runs)), np.fromiter(map(len, runs), np.int64, len(runs)))
        tokens = np.fromiter(map(len, flat), np.int64, len(flat)) > 1  # 1-char runs are no tokens
        ids, text = ids[tokens], text[tokens]
        starts = np.searchsorted(text, np.arange(len(runs) + 1))
        pairs = np.flatnonzero((ids[:-1] >= 0) & (ids[1:] >= 0) & (text[:-1] == text[1:]))
        found, bigram_ids = bigrams.find(ids[pairs], ids[pairs + 1])
        # Place 2k holds token k as a unigram term, 2k + 1 the bigram it starts: texts stay apart.
        terms = np.full(2 * len(ids), -1, dtype=np.int64)
        terms[0::2] = np.where(ids < n_terms, ids, -1)
        terms[2 * pairs[found] + 1] = bigram_ids
        kept = terms >= 0
        kept_before = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(kept, out=kept_before[1:])
        return terms[kept].astype(np.int32), kept_before[2 * starts].astype(np.int32)

    def transform_one(self, text: str) -> tuple[IntArray, FloatArray]:
        """Sparse (column indices, values) of one text; same numbers as a ``transform`` row."""
        lowered = text.lower()
        words = lowered.split()
        tokens = [t for t in _word_runs(lowered, words) if len(t) > 1]
        word_ids = np.fromiter(map(self.word_index.get, _terms_of(tokens), repeat(-1)), np.int64)
        table = self._feature_rows()
        with table.lock:
            rows, _ = table.resolve(words, self._new_grams)
            char_cols = table.columns_of(rows)
        cols, counts = np.unique(np.concatenate([word_ids[word_ids >= 0], char_cols]), return_counts=True)
        vals = (1 + np.log(counts.astype(np.float32))) * table.idf[cols]
        split = int(np.searchsorted(cols, len(self.word_idf)))
        for block, weight in ((vals[:split], 1.0), (vals[split:], self.config.char_weight)):
            if len(block):
                block *= weight / np.sqrt(np.dot(block, block))
        return cols, vals

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
        # Built here (~20 ms for 60k features) rather than by the first batch: models load off the event loop.
        f._bigrams = BigramTable.of(f.word_index)
        f._rows = FeatureRows(f.word_idf, f.char_idf)
        return f


def _pack_terms(index: dict[str, int]) -> NDArray[np.uint8]:
    # Terms never contain "\n" (words are whitespace-split), so it is a safe separator.
    return np.frombuffer("\n".join(index).encode("utf-8"), dtype=np.uint8)


def _unpack_terms(packed: np.ndarray) -> list[str]:
    text = packed.tobytes().decode("utf-8")
    return text.split("\n") if text else []
