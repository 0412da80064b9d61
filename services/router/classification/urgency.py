"""Urgency signals from a multilingual phrase lexicon plus cheap tone and scope cues.

Phrases are matched on word boundaries, case-insensitively, with precompiled regexes. In a
phrase, a leading ``*`` lets it end a compound word (German "Systemausfall"), a trailing ``*``
lets it take an inflection or continue into a compound (Estonian "katkestuse").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

Level = Literal["low", "medium", "high", "critical"]
LEVELS: tuple[Level, ...] = ("low", "medium", "high", "critical")

# Languages: en, de, et, fr, es, nl, fi, sv.
_CRITICAL = """
outage*|data loss|lost data|lost all data|security breach|data breach|security incident|ransomware|hacked|
compromised|production down|prod down|production is down|major incident|sev1|sev 1|
*ausfall|datenverlust|sicherheitslücke|sicherheitsvorfall|gehackt|produktion steht|
katkestus*|rike|rikke*|andmekadu|andmed kadunud|turvaintsident|turvarikkumine|häkitud|tootmine seisab|
panne générale|perte de données|faille de sécurité|piratage|piraté*|production arrêtée|
caída del servicio|pérdida de datos|brecha de seguridad|hackeado|producción caída|
*storing|datalek|gegevensverlies|dataverlies|beveiligingsincident|productie ligt plat|
*katko*|tietovuoto|tietojen menetys|tietoturvaloukkaus|hakkeroitu|tuotanto seis*|
*avbrott|dataförlust|dataintrång|säkerhetsincident|hackad|produktionen står
"""
_HIGH = """
urgent*|asap|as soon as possible|emergency|critical|immediately|down|not working|doesn't work|
cannot log in|cannot login|can't log in|can't login|cant login|can not log in|unable to log in|
unable to login|cannot sign in|can't sign in|locked out|blocked|blocker|blocking|production|deadline today|
dringend*|eilt|sofort|schnellstmöglich|so schnell wie möglich|funktioniert nicht|geht nicht|
kann mich nicht anmelden|keine anmeldung möglich|gesperrt|blockiert|kritisch*|notfall|produktion*|
kiire|kiiresti|kiireloomuline|esimesel võimalusel|koheselt|kohe|ei tööta|ei saa sisse logida|
ei pääse ligi|blokeeritud|lukus|kriitiline|tootmis*|maas|
urgence|au plus vite|dès que possible|immédiatement|ne fonctionne pas|ne marche pas|
impossible de se connecter|ne peux pas me connecter|bloqué*|critique|en production|
urgente|lo antes posible|cuanto antes|inmediatamente|no funciona|no puedo iniciar sesión|
no puedo acceder|bloquead*|crítico|caído|
spoed|zo snel mogelijk|werkt niet|kan niet inloggen|geblokkeerd|kritiek|ligt plat|productie*|
kiireellinen|pikaisesti|heti|mahdollisimman pian|ei toimi|en pääse kirjautumaan|
ei pysty kirjautumaan|estetty|lukittu|kriittinen|tuotanto*|alhaalla|nurin|
brådskande|akut|snarast|omedelbart|så snart som möjligt|fungerar inte|funkar inte|kan inte logga in|
blockerad|utelåst|kritisk|nere|produktion*
"""
# Scope: many people affected. Alone it means "high"; with a high phrase it means "critical".
_SCOPE = """
all users|everyone|everybody|nobody can|no one can|whole team|whole company|entire company|all employees|
company-wide|alle benutzer|alle nutzer|alle mitarbeiter|niemand kann|keiner kann|
kõik kasutajad|keegi ei saa|kogu ettevõte|tous les utilisateurs|personne ne peut|
todos los usuarios|nadie puede|alle gebruikers|niemand kan|kaikki käyttäjät|kukaan ei pysty|
alla användare|ingen kan
"""
_MEDIUM = """
error*|failed|failing|broken|crash*|slow|stuck|fehler*|langsam|abgestürzt|viga|tõrge|aeglane|
erreur|lent|plantage|lento|fout*|foutmelding|traag|virhe*|hidas|felmeddelande|långsam
"""
# Tags are single words: vendor priority words and a few urgency labels.
_TAG_LEVELS: dict[str, Level] = {
    "p1": "critical",
    "critical": "critical",
    "blocker": "critical",
    "outage": "critical",
    "sev1": "critical",
    "security": "high",
    "p2": "high",
    "urgent": "high",
    "high": "high",
    "major": "high",
    "vip": "medium",
    "escalated": "high",
}


def _alternative(raw: str) -> str:
    core = r"\s+".join(re.escape(w) for w in raw.strip("*").split())
    prefix = r"\w*" if raw.startswith("*") else ""
    suffix = r"\w*" if raw.endswith("*") else r"(?!\w)"
    return prefix + core + suffix


def _join(alternatives: Iterable[str], flags: re.RegexFlag = re.IGNORECASE) -> re.Pattern[str]:
    # One word-start check in front of the alternation: mid-word positions fail at once instead
    # of trying every phrase (20x faster). Same matches: a leading \w* never starts mid-word.
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + ")", flags)


@dataclass(frozen=True)
class _Lexicon:
    """One level's phrases, longest first, each with the longest word it cannot match without.

    Case-insensitive alternation is slow in ``re`` (every phrase is tried at every word start),
    so :meth:`finditer` first keeps the phrases whose key word occurs in the case-folded text
    (a plain substring test) and runs the alternation of just those, in the same order. A
    phrase whose key word is absent cannot match anywhere, so the matches are the same.
    """

    alternatives: tuple[str, ...]
    lowered: tuple[str, ...]  # the same, lower-cased, to match case-sensitively on lowered ASCII
    keys: tuple[str, ...]
    # For ASCII text: the first word's leading run of word characters, when the phrase can only
    # match where that run is a whole word of the text (set lookup); None: use the substring test.
    words: tuple[str | None, ...]
    # The same, indexed: phrase positions by required word, and the positions without one.
    by_word: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False, hash=False)
    loose: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        by_word: dict[str, list[int]] = {}
        for i, word in enumerate(self.words):
            if word is not None:
                by_word.setdefault(word, []).append(i)
        object.__setattr__(self, "by_word", {w: tuple(ids) for w, ids in by_word.items()})
        object.__setattr__(self, "loose", tuple(i for i, word in enumerate(self.words) if word is None))

    @classmethod
    def of(cls, phrases: str) -> _Lexicon:
        raws = sorted({p.strip() for p in phrases.split("|") if p.strip()}, key=len, reverse=True)
        return cls(
            tuple(_alternative(raw) for raw in raws),
            tuple(_alternative(raw.lower()) for raw in raws),
            tuple(_fold(max(raw.strip("*").split(), key=len)) for raw in raws),
            tuple(_whole_word(raw) for raw in raws),
        )

    def finditer(self, text: str, folded: str, words: frozenset[str] | None) -> Iterator[re.Match[str]]:
        """``words``: the \\w+ runs of ``folded`` when the text is ASCII, else None."""
        if words is None:
            chosen = tuple(i for i, key in enumerate(self.keys) if key in folded)
            return _subpattern(self, chosen, True).finditer(text) if chosen else iter(())
        # Only phrases whose required word is in the text (a set intersection), in lexicon order.
        candidates = sorted(
            [*self.loose, *(i for word in words & self.by_word.keys() for i in self.by_word[word])]
        )
        chosen = tuple(i for i in candidates if self.keys[i] in folded)
        # Lower-cased ASCII has the same positions and word boundaries as the text, and the
        # IGNORECASE equivalences beyond lower-casing involve non-ASCII letters only; matching
        # case-sensitively lets re skip phrases by their first letter (matches come out lower-cased).
        return _subpattern(self, chosen, False).finditer(folded) if chosen else iter(())


def _whole_word(raw: str) -> str | None:
    """The word a match must start with, as a whole \\w+ run (see :attr:`_Lexicon.words`).

    A phrase without a leading ``*`` starts at a word start; its first word's leading run of
    word characters ends at a non-word character: the rest of the word ("doesn't"), the space
    before the next word, or the ``(?!\\w)`` end of the phrase. A single word with a trailing
    ``*`` may continue into a longer word: no whole-word test there.
    """
    if raw.startswith("*"):
        return None
    words = raw.strip("*").split()
    run = _WORD_RUN.match(words[0])
    if run is None or not run.group(0).isascii():
        return None
    if len(words) == 1 and run.end() == len(words[0]) and raw.endswith("*"):
        return None
    return run.group(0)


@lru_cache(maxsize=1024)
def _subpattern(lexicon: _Lexicon, chosen: tuple[int, ...], ignorecase: bool) -> re.Pattern[str]:
    if ignorecase:
        return _join(lexicon.alternatives[i] for i in chosen)
    return _join((lexicon.lowered[i] for i in chosen), re.RegexFlag(0))


# What re.IGNORECASE treats as equal beyond simple lower-casing, for the letters of the lexicon
# (re._casefix): dotless i and long s; and "İ", which str.lower() turns into two characters.
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s"})


_WORD_RUN = re.compile(r"\w+")


def _fold(text: str) -> str:
    return text.translate(_FOLD).lower()


_LEXICON: tuple[tuple[str, Level, _Lexicon], ...] = (
    ("critical", "critical", _Lexicon.of(_CRITICAL)),
    ("high", "high", _Lexicon.of(_HIGH)),
    ("scope", "high", _Lexicon.of(_SCOPE)),
    ("medium", "medium", _Lexicon.of(_MEDIUM)),
)

# No real word is this long; base64 blobs and hashes are, and the compound-word patterns (\w*)
# would cost quadratic time on them, so they are blanked before matching.
_LONG_TOKEN = re.compile(r"\w{48,}")


def _blank_long_tokens(text: str) -> str:
    # A \w run lies inside one whitespace-free chunk: without a chunk of 48+ characters (the
    # usual ticket) there is nothing to blank, and splitting costs a fraction of the regex scan.
    if max(map(len, text.split()), default=0) < 48:
        return text
    return _LONG_TOKEN.sub(" ", text)


_CAPS_WORD = re.compile(r"(?<!\w)[^\W\d_]{3,}(?!\w)")
_ASCII_CAPS_WORD = re.compile(r"(?<!\w)[A-Z]{3,}(?!\w)")  # the all-caps words of ASCII text


@dataclass(frozen=True)
class UrgencyAssessment:
    level: Level
    signals: list[str] = field(default_factory=list)  # human-readable reasons, e.g. "critical: 'data loss'"

    @property
    def rank(self) -> int:
        """1 (low) to 4 (critical)."""
        return LEVELS.index(self.level) + 1


def _shouting(text: str) -> bool:
    if text.isascii() and len(_ASCII_CAPS_WORD.findall(text)) < 2:
        return False  # fewer than two all-caps words: neither test below can pass (the common case)
    words = _CAPS_WORD.findall(text)
    caps = [w for w in words if w.isupper()]
    # Three different capitalised words, or most of the text, is shouting; a repeated acronym is not.
    return len(set(caps)) >= 3 or (len(words) >= 2 and len(caps) / len(words) >= 0.6)


def assess_urgency(subject: str, description: str, tags: Iterable[str] = ()) -> UrgencyAssessment:
    text = _blank_long_tokens(f"{subject}\n{description}")
    signals: list[str] = []
    rank = 1
    found: set[str] = set()
    folded = _fold(text)
    # ASCII text: lower-casing is exact there and keeps word boundaries, so words can be looked up.
    words = frozenset(_WORD_RUN.findall(folded)) if text.isascii() else None
    for kind, level, lexicon in _LEXICON:
        matches = sorted(
            {" ".join(m.group(0).lower().split()) for m in lexicon.finditer(text, folded, words)}
        )
        if matches:
            found.add(kind)
            rank = max(rank, LEVELS.index(level) + 1)
            signals.extend(f"{kind}: {m!r}" for m in matches)
    for tag in tags:
        tag_level = _TAG_LEVELS.get(tag.strip().lower())
        if tag_level is not None:
            rank = max(rank, LEVELS.index(tag_level) + 1)
            signals.append(f"tag: {tag.strip().lower()!r}")
    if "scope" in found and found & {"high", "critical"}:
        rank = 4
        signals.append("scope: many users affected by a high-urgency problem")
    tone = []
    if "!!" in text or text.count("!") >= 3:
        tone.append("tone: exclamation marks")
    if _shouting(text):
        tone.append("tone: shouting (all caps)")
    if tone:
        signals.extend(tone)
        rank = max(rank, min(rank + 1, 3))  # tone raises by one level, never to critical on its own
    return UrgencyAssessment(LEVELS[rank - 1], signals)
