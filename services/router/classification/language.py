"""Language detection with py3langid (its model ships inside the package: nothing is downloaded)."""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

# Languages the helpdesk expects; restricting the model to them avoids exotic guesses on
# short, jargon-heavy tickets. Pass languages=None to use all ~97 languages of the model.
DEFAULT_LANGUAGES: frozenset[str] = frozenset(
    {
        "et",
        "en",
        "de",
        "fi",
        "sv",
        "ru",
        "lv",
        "lt",
        "fr",
        "es",
        "it",
        "nl",
        "pt",
        "pl",
        "da",
        "no",
        "cs",
        "sk",
        "hu",
        "ro",
        "uk",
        "tr",
        "el",
        "bg",
        "hr",
        "sl",
    }
)
MIN_LETTERS = 12  # below this the guess is noise


@dataclass(frozen=True)
class LanguageGuess:
    language: str | None  # ISO 639-1 code; None when the text is too short or the guess too weak
    confidence: float


_lock = threading.Lock()  # classify() of one identifier is not documented as thread-safe


@lru_cache(maxsize=8)
def _identifier(languages: frozenset[str] | None) -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_DIR / MODEL_FILE, norm_probs=True)
    if languages is not None:
        unknown = languages - set(identifier.nb_classes)
        if unknown:
            raise ValueError(f"py3langid does not know languages {sorted(unknown)}")
        identifier.set_languages(sorted(languages))
    return identifier


def _has_letters(text: str, count: int) -> bool:
    """At least ``count`` letters; stops at the count (a full scan cost as much as the guess)."""
    for ch in text:
        if ch.isalpha():
            count -= 1
            if count <= 0:
                return True
    return count <= 0


def detect_language(
    text: str, languages: Iterable[str] | None = DEFAULT_LANGUAGES, min_confidence: float = 0.5
) -> LanguageGuess:
    """Guess the language of ``text`` among ``languages`` (None: every language the model knows)."""
    if not _has_letters(text, MIN_LETTERS):
        return LanguageGuess(None, 0.0)
    identifier = _identifier(None if languages is None else frozenset(languages))
    with _lock:
        language, confidence = identifier.classify(text)
    confidence = float(confidence)
    return LanguageGuess(str(language) if confidence >= min_confidence else None, confidence)


@dataclass(frozen=True)
class _Automaton:
    """py3langid's byte DFA and naive Bayes tables as numpy arrays, for walking many texts at once."""

    next_move: NDArray[np.int32]  # (row << 8) + byte -> next state
    row_base: NDArray[np.int64]  # state -> row << 8
    output: NDArray[np.int64]  # state -> feature id, -1 for none
    feature_scores: NDArray[np.float32]  # feature -> per-language log-probability
    prior: NDArray[np.float32]
    labels: tuple[str, ...]
    aliases: tuple[tuple[int, int], ...]  # (first, duplicate) columns of one label (srl -> sr)


@lru_cache(maxsize=8)
def _automaton(languages: frozenset[str] | None) -> _Automaton:
    identifier = _identifier(languages)
    if identifier.tk_output[0] >= 0:  # detect_languages pads finished texts with the start state
        raise ValueError("py3langid's start state emits a feature: batch detection cannot pad with it")
    return _Automaton(
        np.frombuffer(identifier.tk_nextmove, dtype=np.uint32).astype(np.int32),
        np.asarray(identifier._rowbase, dtype=np.int64),
        np.asarray(identifier.tk_output, dtype=np.int64),
        # C order: py3langid's table is Fortran-ordered after set_languages, and scipy's sparse @ dense
        # would copy all 10 MB of it on every batch to get a C-ordered view.
        np.ascontiguousarray(identifier.nb_ptc, dtype=np.float32),
        np.asarray(identifier.nb_pc, dtype=np.float32),
        tuple(identifier.nb_classes),
        tuple(identifier._alias_pairs),
    )


def _encode(text: str) -> bytes:
    # As py3langid does before its walk: all-caps text lower-cased, NFC, UTF-8.
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


def detect_languages(
    texts: Sequence[str], languages: Iterable[str] | None = DEFAULT_LANGUAGES, min_confidence: float = 0.5
) -> list[LanguageGuess]:
    """``detect_language`` for many texts at once: the same guesses, a fraction of the cost.

    py3langid walks its byte automaton one text at a time in Python; here every text advances one
    byte per numpy step (texts sorted by length, so step i touches only texts longer than i), and
    the feature counts and scores are computed for the whole batch in a few array operations.
    """
    guesses = [LanguageGuess(None, 0.0)] * len(texts)
    chosen = [i for i, text in enumerate(texts) if _has_letters(text, MIN_LETTERS)]
    if not chosen:
        return guesses
    dfa = _automaton(None if languages is None else frozenset(languages))
    encoded = [_encode(texts[i]) for i in chosen]
    order = sorted(range(len(encoded)), key=lambda k: -len(encoded[k]))
    lengths = np.array([len(encoded[k]) for k in order], dtype=np.int64)
    width = int(lengths[0])
    # Position-major, so that each step reads and writes contiguous memory.
    grid = np.zeros((width, len(order)), dtype=np.uint8)
    for row, k in enumerate(order):
        grid[: lengths[row], row] = np.frombuffer(encoded[k], dtype=np.uint8)
    # A text's steps after its end stay at state 0, the start state, which emits no feature.
    visited = np.zeros((width, len(order)), dtype=np.int32)
    states = np.zeros(len(order), dtype=np.int64)
    active = len(order)
    for step in range(width):
        while lengths[active - 1] <= step:  # texts sorted longest first: drop the finished ones
            active -= 1
        states[:active] = dfa.next_move[dfa.row_base[states[:active]] + grid[step, :active]]
        visited[step, :active] = states[:active]
    features = dfa.output[visited]
    steps, rows = np.nonzero(features >= 0)
    counts = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, features[steps, rows])),
        shape=(len(order), len(dfa.feature_scores)),
    )
    counts.sum_duplicates()
    counts.data = np.log1p(counts.data)
    scores = np.asarray(counts @ dfa.feature_scores) + dfa.prior
    scores[np.diff(counts.indptr) == 0] = 0.0  # no feature at all: uniform, as py3langid
    # Softmax at temperature sqrt(bytes), as py3langid's norm_probs.
    scores *= (1.0 / np.sqrt(np.maximum(lengths, 1))).astype(np.float32)[:, None]
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    scores /= scores.sum(axis=1, keepdims=True)
    for first, duplicate in dfa.aliases:  # one probability per label, as py3langid folds them
        scores[:, first] += scores[:, duplicate]
        scores[:, duplicate] = 0.0
    best = scores.argmax(axis=1)
    for row, k in enumerate(order):
        confidence = float(scores[row, best[row]])
        language = dfa.labels[best[row]] if confidence >= min_confidence else None
        guesses[chosen[k]] = LanguageGuess(language, confidence)
    return guesses
