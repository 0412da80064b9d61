"""The urgency scan's key-word prefilter finds exactly what the full case-insensitive alternation finds."""

from __future__ import annotations

import random
import re

import pytest

from services.router.classification import urgency
from services.router.classification.urgency import _CRITICAL, _HIGH, _LONG_TOKEN, _MEDIUM, _SCOPE


def reference_pattern(phrases: str) -> re.Pattern[str]:
    """The lexicon as one alternation, as it was compiled before the prefilter."""
    parts = []
    for raw in sorted({p.strip() for p in phrases.split("|") if p.strip()}, key=len, reverse=True):
        core = r"\s+".join(re.escape(w) for w in raw.strip("*").split())
        prefix = r"\w*" if raw.startswith("*") else ""
        suffix = r"\w*" if raw.endswith("*") else r"(?!\w)"
        parts.append(prefix + core + suffix)
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + ")", re.IGNORECASE)


LEVELS = [_CRITICAL, _HIGH, _SCOPE, _MEDIUM]
REFERENCE = [reference_pattern(p) for p in LEVELS]


def phrases() -> list[str]:
    return [p.strip().strip("*") for level in LEVELS for p in level.split("|") if p.strip()]


def words_of(text: str) -> frozenset[str] | None:
    return frozenset(re.findall(r"\w+", urgency._fold(text))) if text.isascii() else None


def mangle(word: str, rng: random.Random, special: bool = True) -> str:
    """Upper-case some letters; swap in the characters re.IGNORECASE folds specially."""
    out = []
    for ch in word:
        roll = rng.random()
        if not special:
            out.append(ch.upper() if roll < 0.3 else ch)
        elif ch == "i" and roll < 0.15:
            out.append(rng.choice(["\u0130", "\u0131", "I"]))
        elif ch == "s" and roll < 0.15:
            out.append(rng.choice(["\u017f", "S"]))
        elif ch == "k" and roll < 0.1:
            out.append("\u212a")  # Kelvin sign
        elif roll < 0.3:
            out.append(ch.upper())
        else:
            out.append(ch)
    return "".join(out)


def random_text(rng: random.Random, vocabulary: list[str], special: bool = True) -> str:
    filler = ["the", "printer", "system", "and", "we", "ticket", "SAP", "vpn", "x" * 50, "!!", "\n", "-"]
    words = []
    for _ in range(rng.randint(0, 60)):
        roll = rng.random()
        if roll < 0.3:
            words.append(mangle(rng.choice(vocabulary), rng, special))
        elif roll < 0.4:  # inside or glued onto another word
            words.append(
                rng.choice(["pre", "", "Über"])
                + mangle(rng.choice(vocabulary), rng, special)
                + rng.choice(["", "s", "en", "x"])
            )
        else:
            words.append(rng.choice(filler))
    return rng.choice([" ", "  ", "\t", "\n"]).join(words)


def norm(match: str) -> str:
    """How assess_urgency reports a match (the ASCII path matches the lower-cased text)."""
    return " ".join(match.lower().split())


def matches(text: str) -> list[list[tuple[int, str]]]:
    folded, words = urgency._fold(text), words_of(text)
    return [
        [(m.start(), norm(m.group(0))) for m in lex.finditer(text, folded, words)]
        for _, _, lex in urgency._LEXICON
    ]


def reference_matches(text: str) -> list[list[tuple[int, str]]]:
    return [[(m.start(), norm(m.group(0))) for m in reference.finditer(text)] for reference in REFERENCE]


@pytest.mark.parametrize("special", [True, False], ids=["unicode", "ascii"])
def test_prefilter_matches_the_full_alternation(special: bool) -> None:
    rng = random.Random(7)
    vocabulary = phrases() if special else [p for p in phrases() if p.isascii()]
    ascii_texts = 0
    for _ in range(3000):
        text = _LONG_TOKEN.sub(" ", random_text(rng, vocabulary, special))
        ascii_texts += text.isascii()
        assert matches(text) == reference_matches(text), text
    assert ascii_texts > (1000 if not special else 0)  # the word lookup path was exercised


def test_every_phrase_is_found_in_any_case() -> None:
    for phrase in phrases():
        for text in (phrase, phrase.upper(), phrase.title(), f"x {phrase}, y", f"x{phrase} {phrase}x"):
            assert matches(text) == reference_matches(text), text
        assert any(matches(phrase)), phrase


def reference_shouting(text: str) -> bool:
    words = re.findall(r"(?<!\w)[^\W\d_]{3,}(?!\w)", text)
    caps = [w for w in words if w.isupper()]
    return len(set(caps)) >= 3 or (len(words) >= 2 and len(caps) / len(words) >= 0.6)


def test_the_shouting_shortcut_agrees_with_the_full_test():
    rng = random.Random(11)
    pieces = [
        "HELP",
        "NOW",
        "ASAP",
        "Server",
        "down",
        "VPN",
        "vpn",
        "ok",
        "A1B",
        "ABC_D",
        "ÄRGER",
        "x",
        "URGENT!!",
    ]
    texts = ["", "HELP NOW", "HELP", "SERVER DOWN AGAIN", "VPN VPN VPN", "VPN is down", "ÄRGER ÜBER ALLES"]
    texts += [" ".join(rng.choices(pieces, k=rng.randint(1, 8))) for _ in range(2000)]
    for text in texts:
        assert urgency._shouting(text) is reference_shouting(text), text


def test_long_token_blanking_shortcut_changes_nothing_it_should_not():
    rng = random.Random(5)
    alphabet = "ab_1-/.é "
    texts = ["", "short words only", "x" * 47, "x" * 48, "y" * 60 + " tail", "http://example.com/" + "a" * 50]
    texts += ["".join(rng.choices(alphabet, k=rng.randint(0, 200))) for _ in range(500)]
    texts += [" ".join(["w" * rng.randint(1, 60) for _ in range(5)]) for _ in range(200)]
    for text in texts:
        assert urgency._blank_long_tokens(text) == _LONG_TOKEN.sub(" ", text), text
