"""Language detection with py3langid (its model ships inside the package: nothing is downloaded)."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from shared.frozen import frozen

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


@frozen
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


# Web and mail addresses and mobile mail apps' English sign-offs say nothing of the writer's
# language, yet py3langid reads their letters as words: an Estonian sentence with a SharePoint link
# or "Sent from my iPhone" under it came out unknown or English. They are blanked before the guess:
# a sign-off line, and each whitespace-separated token holding "://", "@" or "www.".
_SIGN_OFF = re.compile(r"^[ \t]*(?:Sent from my|Get Outlook for)\b[^\n]*", re.MULTILINE)
_ADDRESS_MARK = re.compile(r"://|@|www\.")
_TOKEN_REST = re.compile(r"\S*")


def _language_part(text: str) -> str:
    """``text`` without web and mail addresses and mobile sign-offs."""
    # Substring tests first: most tickets have none and pay ~1 µs. Markers found by one literal
    # search and tokens widened around them (a regex for whole tokens cost ~30 µs a ticket).
    if "Sent from my" in text or "Get Outlook for" in text:
        text = _SIGN_OFF.sub(" ", text)
    if "://" not in text and "@" not in text and "www." not in text:
        return text
    pieces: list[str] = []
    done = 0
    for mark in _ADDRESS_MARK.finditer(text):
        start = mark.start()
        if start < done:  # in the token just blanked
            continue
        while start > done and not text[start - 1].isspace():
            start -= 1
        pieces += (text[done:start], " ")
        rest = _TOKEN_REST.match(text, mark.end())
        done = mark.end() if rest is None else rest.end()
    pieces.append(text[done:])
    return "".join(pieces)


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
    """Guess the language of ``text`` among ``languages`` (None: every language the model knows).

    Web and mail addresses and mobile sign-offs are left out (see ``_language_part``)."""
    text = _language_part(text)
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
    output: NDArray[np.int32]  # state -> feature id, -1 for none
    feature_scores: NDArray[np.float32]  # feature -> per-language log-probability
    prior: NDArray[np.float32]
    labels: tuple[str, ...]
    aliases: tuple[tuple[int, int], ...]  # (first, duplicate) columns of one label (srl -> sr)
    # The longest byte string a state stands for (6 for py3langid's model): from the start state,
    # this many bytes of any text bring the walk to the state the full walk has there.
    depth: int


def _max_depth(next_move: NDArray[np.int32], row_base: NDArray[np.int64]) -> int:
    """Breadth-first distance of the farthest state from the start state.

    The DFA is an Aho-Corasick automaton: after any input it is in the node of the longest suffix
    of that input that is a prefix of a feature. Such a node of length d is reached in d steps and
    no fewer, so the farthest distance is the longest node, and a walk restarted ``depth`` bytes
    before any position is in the same state as the full walk from that position on.
    """
    seen = np.zeros(len(row_base), dtype=bool)
    seen[0] = True
    frontier = np.zeros(1, dtype=np.int64)
    every_byte = np.arange(256, dtype=np.int64)
    distance = 0
    while True:
        # A mask of the states reached, not np.unique of every move: no sort of millions of ids
        # (0.7 -> 0.13 s at start-up for py3langid's 104,583 states).
        reached = np.zeros(len(row_base), dtype=bool)
        for i in range(0, len(frontier), 4096):
            reached[next_move[row_base[frontier[i : i + 4096]][:, None] + every_byte]] = True
        frontier = np.flatnonzero(reached & ~seen)
        if not len(frontier):
            return distance
        seen[frontier] = True
        distance += 1


@lru_cache(maxsize=8)
def _automaton(languages: frozenset[str] | None) -> _Automaton:
    identifier = _identifier(languages)
    if identifier.tk_output[0] >= 0:  # detect_languages pads finished texts with the start state
        raise ValueError("py3langid's start state emits a feature: batch detection cannot pad with it")
    next_move = np.frombuffer(identifier.tk_nextmove, dtype=np.uint32).astype(np.int32)
    row_base = np.asarray(identifier._rowbase, dtype=np.int64)
    return _Automaton(
        next_move,
        row_base,
        np.asarray(identifier.tk_output, dtype=np.int32),
        # C order: py3langid's table is Fortran-ordered after set_languages, and scipy's sparse @ dense
        # would copy all 10 MB of it on every batch to get a C-ordered view.
        np.ascontiguousarray(identifier.nb_ptc, dtype=np.float32),
        np.asarray(identifier.nb_pc, dtype=np.float32),
        tuple(identifier.nb_classes),
        tuple(identifier._alias_pairs),
        _max_depth(next_move, row_base),
    )


def load_language_model(languages: Iterable[str] | None = DEFAULT_LANGUAGES) -> None:
    """Load py3langid's model and build the batched walk's tables now (about a second), so that
    neither a single guess nor the first batch pays for it."""
    _automaton(None if languages is None else frozenset(languages))


def _encode(text: str) -> bytes:
    # As py3langid does before its walk: all-caps text lower-cased, NFC, UTF-8.
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


# Bytes per segment of the batched walk. The walk takes one numpy step per byte of the longest
# segment, so a batch costs ~SEGMENT_BYTES steps however long its longest text (it was the
# longest text's length: ~2,000 steps for a batch of 25 tickets, most of their CPU). Shorter
# segments mean fewer steps but more lead-in bytes (``depth`` each): 64 -> 24 took the bench's
# tickets from 28.1 to 23.9 µs a text in batches of 15, 16.7 to 15.0 in batches of 50; 16 to 32
# measured alike.
SEGMENT_BYTES = 24


# The batch's (text, feature) keys fit 32 bits below this many texts times features (sorted
# faster than 64-bit ones): up to ~21,000 texts with py3langid's 100,053 features.
INT32_KEYS_BELOW = 2**31


# Fewer texts than this are guessed one by one: the batch's array set-up costs ~0.25 ms a call,
# more than py3langid's own walk (~70 µs a ticket) below about six texts.
BATCH_FROM = 6
# More texts than this are guessed in parts of this many: the walk's arrays (a row per byte step,
# a column per segment) outgrow the CPU's caches. Bench tickets, per text: 13.0 µs in calls of 500,
# 13.3 of 1,000, 18.8 of 2,000 (the router's call for a backlog's batch).
CHUNK_TEXTS = 512


def detect_languages(
    texts: Sequence[str], languages: Iterable[str] | None = DEFAULT_LANGUAGES, min_confidence: float = 0.5
) -> list[LanguageGuess]:
    """``detect_language`` for many texts at once: the same guesses, a fraction of the cost.

    py3langid walks its byte automaton one text at a time in Python. Here every text is cut into
    segments of ``SEGMENT_BYTES``, each starting ``depth`` bytes early from the start state (the
    automaton is in the full walk's state by the segment's first byte, see :func:`_max_depth`), and
    every segment advances one byte per numpy step. The features seen in the lead-ins are dropped
    (the previous segment counted them), the rest are summed per text and scored for the whole
    batch in a few array operations.
    """
    if len(texts) < BATCH_FROM:
        return [detect_language(text, languages, min_confidence) for text in texts]
    if len(texts) > CHUNK_TEXTS:
        return [
            guess
            for at in range(0, len(texts), CHUNK_TEXTS)
            for guess in detect_languages(texts[at : at + CHUNK_TEXTS], languages, min_confidence)
        ]
    texts = [_language_part(text) for text in texts]
    guesses = [LanguageGuess(None, 0.0)] * len(texts)
    chosen = [i for i, text in enumerate(texts) if _has_letters(text, MIN_LETTERS)]
    if not chosen:
        return guesses
    dfa = _automaton(None if languages is None else frozenset(languages))
    encoded = [_encode(texts[i]) for i in chosen]
    lengths = np.array([len(data) for data in encoded], dtype=np.int64)
    # The segments, as arrays (no Python loop per segment): owner text, start, lead-in, size.
    per_text = (lengths + SEGMENT_BYTES - 1) // SEGMENT_BYTES
    owners = np.repeat(np.arange(len(encoded)), per_text)
    first_of_owner = np.repeat(np.cumsum(per_text) - per_text, per_text)
    starts = (np.arange(len(owners)) - first_of_owner) * SEGMENT_BYTES
    begins = np.maximum(starts - dfa.depth, 0)
    sizes = np.minimum(starts + SEGMENT_BYTES, lengths[owners]) - begins
    order = np.argsort(-sizes, kind="stable")  # longest first
    owners, begins, sizes = owners[order], begins[order], sizes[order]
    lead = (starts[order] - begins).astype(np.int64)
    width = int(sizes[0])
    # Position-major, so that each step reads and writes contiguous memory; the bytes of every
    # segment gathered from one buffer of all texts, zero past a segment's end.
    joined = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    text_starts = np.cumsum(lengths) - lengths
    steps_of = np.arange(width, dtype=np.int64)[:, None]
    inside = steps_of < sizes[None, :]
    where = np.where(inside, (text_starts[owners] + begins)[None, :] + steps_of, 0)
    grid = np.where(inside, joined[where], 0).astype(np.uint8)
    # A segment's steps after its end stay at state 0, the start state, which emits no feature.
    # Row 0 is the start state, row step + 1 the states after the step's byte. Per step, one line
    # on rows of one array, the segments still walking counted beforehand (sorted longest first,
    # they are a prefix), and int64 states (int32 ones are converted to index with): no numpy
    # scalars, no copies, ~2 µs a text less in batches of 15, ~1 in batches of 50.
    visited = np.zeros((width + 1, len(order)), dtype=np.int64)
    row_base, next_move = dfa.row_base, dfa.next_move
    walking = np.searchsorted(-sizes, -np.arange(width), side="left").tolist()
    for step, active in enumerate(walking):
        visited[step + 1, :active] = next_move[row_base[visited[step, :active]] + grid[step, :active]]
    visited = visited[1:]
    # Each feature seen outside a lead-in (the previous segment counted those) as one number,
    # text * features + feature, sorted so that a text's repeats of a feature lie side by side:
    # one vectorised sort instead of scipy's sort of every row when it sums duplicate entries.
    features = dfa.output[visited]
    n_features = len(dfa.feature_scores)
    key_type: np.dtype[np.signedinteger[Any]] = np.dtype(
        np.int32 if len(encoded) * n_features < INT32_KEYS_BELOW else np.int64
    )
    seen = (features >= 0) & (steps_of >= lead[None, :])
    keys = np.sort((features.astype(key_type) + (owners.astype(key_type) * n_features)[None, :])[seen])
    new_key = np.empty(len(keys), dtype=bool)
    new_key[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=new_key[1:])
    starts = np.flatnonzero(new_key)
    repeats = np.diff(starts, append=len(keys)).astype(np.float32)
    text_of, feature_of = np.divmod(keys[starts], n_features)
    distinct = np.bincount(text_of, minlength=len(encoded))  # features per text
    indptr = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(distinct, out=indptr[1:])
    counts = sp.csr_matrix((np.log1p(repeats), feature_of, indptr), shape=(len(encoded), n_features))
    scores = np.asarray(counts @ dfa.feature_scores) + dfa.prior
    scores[distinct == 0] = 0.0  # no feature at all: uniform, as py3langid
    # Softmax at temperature sqrt(bytes), as py3langid's norm_probs.
    scores *= (1.0 / np.sqrt(np.maximum(lengths, 1))).astype(np.float32)[:, None]
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    scores /= scores.sum(axis=1, keepdims=True)
    for first, duplicate in dfa.aliases:  # one probability per label, as py3langid folds them
        scores[:, first] += scores[:, duplicate]
        scores[:, duplicate] = 0.0
    best = scores.argmax(axis=1)
    for row, index in enumerate(chosen):
        confidence = float(scores[row, best[row]])
        language = dfa.labels[best[row]] if confidence >= min_confidence else None
        guesses[index] = LanguageGuess(language, confidence)
    return guesses
