"""The urgency scan finds exactly what the full case-insensitive alternation finds.

``assess_urgency`` prefilters phrases by the text's words, matches case-sensitively on folded
text and takes shortcuts for blanking and tone. The reference here is the plain reading of the
module docstring: per level one IGNORECASE alternation of all its phrases, longest first, run
on the text with long tokens blanked, and the assessment built from those matches.
"""

from __future__ import annotations

import base64
import random
import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_rules import make_tickets
from services.router.classification import batch_tokens, urgency
from services.router.classification.urgency import (
    _CRITICAL,
    _HIGH,
    _HIGH_NEUTRAL,
    _MEDIUM,
    _SCOPE,
    _TAG_LEVELS,
    assess_urgency,
)

LONG_TOKEN = re.compile(r"\w{48,}")
LEVEL_NAMES = ("low", "medium", "high", "critical")
KINDS = [("critical", "critical", _CRITICAL), ("high", "high", _HIGH), ("scope", "high", _SCOPE)]
KINDS.append(("medium", "medium", _MEDIUM))
ALL_CHARS = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)


def reference_pattern(phrases: str) -> re.Pattern[str]:
    """The lexicon as one alternation, as it was compiled before the prefilter."""
    parts = []
    for raw in sorted({p.strip() for p in phrases.split("|") if p.strip()}, key=len, reverse=True):
        core = r"\s+".join(re.escape(w) for w in raw.strip("*").split())
        prefix = r"\w*" if raw.startswith("*") else ""
        suffix = r"\w*" if raw.endswith("*") else r"(?!\w)"
        parts.append(prefix + core + suffix)
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + ")", re.IGNORECASE)


NEUTRAL = {"high": _HIGH_NEUTRAL}  # read with the level's phrases, but a match of one is no signal
REFERENCE = [
    (kind, level, reference_pattern(phrases + "|" + NEUTRAL.get(kind, ""))) for kind, level, phrases in KINDS
]
NEUTRAL_MATCH = {
    kind: re.compile(
        "|".join(r"\s+".join(re.escape(w) for w in p.split()) for p in phrases.split("|") if p.strip()),
        re.IGNORECASE,
    )
    for kind, phrases in NEUTRAL.items()
}


def signals_of(kind: str, pattern: re.Pattern[str], text: str) -> list[str]:
    neutral = NEUTRAL_MATCH.get(kind)
    found = (m.group(0) for m in pattern.finditer(text))
    return [norm(m) for m in found if neutral is None or not neutral.fullmatch(m)]


def phrases() -> list[str]:
    return [p.strip().strip("*") for _, _, level in KINDS for p in level.split("|") if p.strip()]


def norm(match: str) -> str:
    """How assess_urgency reports a match (the ASCII path matches the lower-cased text)."""
    return " ".join(match.lower().split())


def matches(text: str) -> list[list[str]]:
    return [[norm(m) for m in found] for found in urgency._phrases(text)]


def unsigned(text: str) -> str:
    """``text`` with its sign-off blocks (``urgency._SIGN_OFF`` on the folded text) blanked."""
    chars = list(text)
    for m in urgency._SIGN_OFF.finditer(urgency._fold(text)):
        chars[m.start() : m.end()] = " " * (m.end() - m.start())
    return "".join(chars)


def reference_matches(text: str) -> list[list[str]]:
    blanked = unsigned(LONG_TOKEN.sub(" ", text))
    return [signals_of(kind, pattern, blanked) for kind, _, pattern in REFERENCE]


def reference_shouting(text: str) -> bool:
    words = re.findall(r"(?<!\w)[^\W\d_]{3,}(?!\w)", text)
    caps = [w for w in words if w.isupper()]
    return len(set(caps)) >= 3 or (len(words) >= 2 and len(caps) / len(words) >= 0.6)


def reference_assess(subject: str, description: str, tags: list[str]) -> tuple[str, list[str]]:
    unquoted = "\n".join(line for line in description.split("\n") if not line.startswith(">"))
    text = LONG_TOKEN.sub(" ", f"{subject}\n{unquoted}")
    signals: list[str] = []
    rank = 1
    found: set[str] = set()
    for kind, level, pattern in REFERENCE:
        found_here = sorted(set(signals_of(kind, pattern, unsigned(text))))
        if found_here:
            found.add(kind)
            rank = max(rank, LEVEL_NAMES.index(level) + 1)
            signals.extend(f"{kind}: {m!r}" for m in found_here)
    for tag in tags:
        tag_level = _TAG_LEVELS.get(tag.strip().lower())
        if tag_level is not None:
            rank = max(rank, LEVEL_NAMES.index(tag_level) + 1)
            signals.append(f"tag: {tag.strip().lower()!r}")
    if "scope" in found and found & {"high", "critical"}:
        rank = 4
        signals.append("scope: many users affected by a high-urgency problem")
    tone = []
    if "!!" in text or text.count("!") >= 3:
        tone.append("tone: exclamation marks")
    if reference_shouting(text):
        tone.append("tone: shouting (all caps)")
    if tone:
        signals.extend(tone)
        rank = max(rank, min(rank + 1, 3))
    return LEVEL_NAMES[rank - 1], signals


def assert_same(subject: str, description: str, tags: list[str] | None = None) -> None:
    result = assess_urgency(subject, description, tags or [])
    expected = reference_assess(subject, description, tags or [])
    assert (result.level, result.signals) == expected, (subject, description, tags)


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


# The proof obligations of matching folded text case-sensitively (see urgency._fold).


def test_folding_keeps_every_character_in_place_and_of_its_class() -> None:
    folded = urgency._fold(ALL_CHARS)
    assert len(folded) == len(ALL_CHARS)
    for cls in (r"\w", r"\s"):
        assert re.sub(cls, "1", re.sub(f"[^{cls}]", "0", ALL_CHARS)) == re.sub(
            cls, "1", re.sub(f"[^{cls}]", "0", folded)
        ), cls
    assert all(len(urgency._fold(c)) == 1 for c in ALL_CHARS)


def test_folding_equals_ignorecase_on_every_lexicon_character() -> None:
    folded = urgency._fold(ALL_CHARS)
    levels = [level for _, _, level in KINDS] + list(NEUTRAL.values())
    lexicon_chars = {c for level in levels for c in level if c not in "|*\n "}
    assert lexicon_chars == {urgency._fold(c) for c in lexicon_chars}  # the lexicon is folded already
    by_fold: dict[str, set[str]] = {p: set() for p in lexicon_chars}
    for c, f in zip(ALL_CHARS, folded, strict=True):
        if f in by_fold:
            by_fold[f].add(c)
    for p in lexicon_chars:
        assert set(re.findall(re.escape(p), ALL_CHARS, re.IGNORECASE)) == by_fold[p], p


def test_word_start_keys_have_no_inner_space() -> None:
    # The prefilter's word-start regex finds every start only if no match can swallow a space.
    assert all(s.startswith(" ") and " " not in s[1:] for s in urgency._STARTS)


# The phrase scan against the full alternation.


@pytest.mark.parametrize("special", [True, False], ids=["unicode", "ascii"])
def test_prefilter_matches_the_full_alternation(special: bool) -> None:
    rng = random.Random(7)
    vocabulary = phrases() if special else [p for p in phrases() if p.isascii()]
    ascii_texts = 0
    for _ in range(3000):
        text = random_text(rng, vocabulary, special)
        ascii_texts += text.isascii()
        assert matches(text) == reference_matches(text), text
    assert ascii_texts > (1000 if not special else 0)  # the ASCII path was exercised


@pytest.mark.parametrize("special", [True, False], ids=["unicode", "ascii"])
def test_the_classifiers_word_runs_give_the_same_scan(special: bool) -> None:
    # The router's batch hands the scan the classifier's batch_tokens (ASCII text only reads them).
    rng = random.Random(11)
    vocabulary = phrases() if special else [p for p in phrases() if p.isascii()]
    punctuated = 0
    for _ in range(3000):
        text = random_text(rng, vocabulary, special) + rng.choice(["", ", x.", "(see: log)", "_a-b_"])
        runs = batch_tokens([text])[1][0]
        punctuated += text.isascii() and runs != text.lower().split()
        assert urgency._phrases(text, runs) == urgency._phrases(text), text
        subject, _, description = text.partition("\n")
        if "\n" in text:
            with_runs = urgency.scan_text(subject, description, runs)
            assert with_runs == urgency.scan_text(subject, description), text
    assert special or punctuated > 500  # runs that differ from the whitespace words were exercised


def test_every_phrase_is_found_in_any_case() -> None:
    for phrase in phrases():
        for text in (phrase, phrase.upper(), phrase.title(), f"x {phrase}, y", f"x{phrase} {phrase}x"):
            assert matches(text) == reference_matches(text), text
            assert_same(text, text.upper())
        assert any(matches(phrase)), phrase


BLOB = base64.b64encode(bytes(range(256)) * 2).decode()
EDGE_CASES = [
    ("Systemausfall", ""),
    ("SYSTEMAUSFALL im Netz", "Netzwerkausfall, Stromausfall. ausfallen"),
    ("Teenuse katkestuse tõttu", "katkestusest KATKESTUS"),
    ("It doesn't work", "DOESN'T  WORK\nat all; doesn\u2019t work, doesn't-work doesn'twork"),
    ("doesn't\n\twork", "doesn't\u00a0work doesn't\u2003work"),
    ("Data  loss", "data\n\nloss, DATA\tLOSS! lost   all\ndata"),
    ("CR\u0130T\u0130CAL", "cr\u0131t\u0131cal urgent cr\u0131tical \u017fecurity breach \u017fev1"),
    ("\u0130", "\u0131 \u017f \u212a \u0130\u0130\u0130 \u0131\u0131\u0131"),
    ("ha\u212aed, hac\u212aed", "HAC\u212aED"),
    ("sev 1", "SEV1 sev  1 sev1x xsev1 sev_1"),
    ("production is down", "PRODUCTION IS DOWN!!! production-is-down"),
    ("down.", "down, down! (down) down? -down- downtime download _down"),
    ("error", "errors erroring error_code error123 _error xerror Fehlermeldung"),
    ("company-wide outage", "company wide outage; company-wideoutage company--wide"),
    ("can't log in", "can't login cant login can not log in cannot  log\nin"),
    ("blob", f"{BLOB} outage {'a' * 48}error {BLOB}urgent"),
    ("x" * 47 + " urgent", "y" * 48 + "urgent URGENT" + "z" * 60 + " " + "Q" * 48 + " ABC DEF"),
    ("Sicherheitslücke", "SICHERHEITSLÜCKE, sicherheitslücken"),
    ("Perte de données", "PERTE DE DONNÉES \u2014 piraté, PIRATÉE, bloqué"),
    ("Caída del servicio", "pérdida de datos; no puedo iniciar sesión"),
    ("Så snart som möjligt", "dataförlust i produktionen, kan inte logga in"),
    ("Tuotanto seisoo", "tuotantoseis tietovuoto käyttökatko katkot"),
    ("Dringend!!", "DRINGENDST schnellstmöglich, alle Benutzer"),
    ("ALL USERS", "NOBODY CAN log in, everyone is BLOCKED"),
    ("", ""),
    ("   ", "\n\n"),
    ("Ünïcödé ÜBER ALLES", "ÄRGER ÜBER ALLES HEUTE"),
    ("漢字 urgent", "\uff35\uff32\uff27\uff25\uff2e\uff34 outage 障害 ÄBC漢 Ä漢字"),
    ("résumé", "café crash, CRASHED"),
    ("tuotanto\u00a0seis", "data\u00a0loss, data\u2003loss"),
    ("e\u0301rror", "error\u0301 down\u0301"),
    ("VPN SAP", "HELP NOW ² ²²² ⅫⅫⅫ"),
    ("Not urgent", "NOT  URGENT, nicht\ndringend; drop-down, Drop Down menu, scroll down, not urgently"),
    ("clos\u0130ng down", "not cr\u0131t\u0131cal, NOT CRITICALLY down, drop downs, top-down down"),
    ("Re: printer", "> URGENT: server down\nthanks, fixed\n>> all users\n > not a quote: urgent\n>"),
    ("Toner", "please\n\nBest  Regards,\nJohn\nPRODUCTION manager\n\nnot working\nregards to all: urgent"),
    ("Toner", "bitte\r\nMit freundlichen GRÜSSEN\r\nLeiter Produktion\r\n" + "x" * 50 + "\nKritisch"),
    ("\u0130T", "d\u0131e\nKind regards\nEmergency \u0130T\nFrom: Bob\nurgent\nregardsless down"),
]


@pytest.mark.parametrize(("subject", "description"), EDGE_CASES)
def test_edge_cases_match_the_reference(subject: str, description: str) -> None:
    assert matches(f"{subject}\n{description}") == reference_matches(f"{subject}\n{description}")
    assert_same(subject, description, [" P1 ", "Urgent", "vip", "unknown"])
    assert_same(subject.upper(), description.lower())


def test_generated_bench_tickets_match_the_reference() -> None:
    for ticket in make_tickets(2000):
        assert_same(ticket["subject"], ticket["description"], ticket["tags"])


def test_real_tickets_match_the_reference(real_sample: tuple[list[str], list[str]]) -> None:
    rng = random.Random(3)
    for text in real_sample[0][:2000]:
        subject, _, description = text.partition(" ")
        assert_same(subject, description)
        assert_same(mangle(subject, rng), mangle(description, rng))  # the non-ASCII path, on real text


SEPARATORS = [" ", "", "  ", "\n", "\t", " \n ", "\u00a0", ", ", "! ", "-", "'", "\u2019"]
FILLER = ["the", "printer", "VPN", "SAP", "Über", "naïve", "x" * 48, BLOB, "1", "_", "ab_c", "down-", "é"]
SPECIAL = {"i": "\u0130\u0131I", "s": "\u017fS", "k": "\u212aK", " ": "\n\t\u00a0", "ü": "Ü", "ö": "Ö"}


def variants(ch: str) -> list[str]:
    return [ch, ch.upper(), *SPECIAL.get(ch, "")]


phrase_text = st.sampled_from(phrases()).flatmap(
    lambda p: st.tuples(*(st.sampled_from(variants(c)) for c in p)).map("".join)
)
piece = st.one_of(
    phrase_text,
    st.tuples(
        st.sampled_from(["", "pre", "Über", "_"]), phrase_text, st.sampled_from(["", "s", "en", "_1"])
    ).map("".join),
    st.sampled_from(FILLER),
    st.text(alphabet="aAeEiIsSkK\u0130\u0131\u017f\u212a!_-' \n", max_size=6),
)
ticket_text = st.lists(st.tuples(piece, st.sampled_from(SEPARATORS)), max_size=12).map(
    lambda pairs: "".join(p + s for p, s in pairs)
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=ticket_text, description=ticket_text, tags=st.lists(st.sampled_from([*_TAG_LEVELS, " Sev1", "x"]))
)
def test_assessment_matches_the_reference_on_lexicon_heavy_text(
    subject: str, description: str, tags: list[str]
) -> None:
    text = f"{subject}\n{description}"
    assert matches(text) == reference_matches(text)
    assert_same(subject, description, tags)


# The shortcuts for tone and blanking.


def test_the_shouting_shortcut_agrees_with_the_full_test() -> None:
    rng = random.Random(11)
    pieces = ["HELP", "NOW", "ASAP", "Server", "down", "VPN", "vpn", "ok", "A1B", "ABC_D", "ÄRGER", "x"]
    pieces += ["URGENT!!", "Q" * 48, "ÄB", "\u2019", "漢字", "Ä漢"]
    texts = ["", "HELP NOW", "HELP", "SERVER DOWN AGAIN", "VPN VPN VPN", "VPN is down", "ÄRGER ÜBER ALLES"]
    texts += [" ".join(rng.choices(pieces, k=rng.randint(1, 8))) for _ in range(3000)]
    for text in texts:
        assert urgency._shouting(text) is reference_shouting(LONG_TOKEN.sub(" ", text)), text


def test_long_token_blanking_shortcut_changes_nothing_it_should_not() -> None:
    rng = random.Random(5)
    alphabet = "ab_1-/.é "
    texts = ["", "short words only", "x" * 47, "x" * 48, "y" * 60 + " tail", "http://example.com/" + "a" * 50]
    texts += ["".join(rng.choices(alphabet, k=rng.randint(0, 200))) for _ in range(500)]
    texts += [" ".join(["w" * rng.randint(1, 60) for _ in range(5)]) for _ in range(200)]
    for text in texts:
        assert urgency._blank_long_tokens(text) == LONG_TOKEN.sub(" ", text), text
