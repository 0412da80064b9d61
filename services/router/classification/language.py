"""Language detection with py3langid (its model ships inside the package: nothing is downloaded)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

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
