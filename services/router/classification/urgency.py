"""Urgency signals from a multilingual phrase lexicon plus cheap tone and scope cues.

Phrases are matched on word boundaries, case-insensitively: per level, the leftmost-first
matches of one regex alternation of its phrases, longest first. The high level's alternation
also has neutral phrases (``_HIGH_NEUTRAL``: "not urgent", "drop down"), whose matches are no
signal but keep their words from matching a shorter phrase. In a phrase, a leading ``*``
lets it end a compound word (German "Systemausfall"), a trailing ``*`` lets it take an
inflection or continue into a compound (Estonian "katkestuse").

Case-insensitive alternation is slow in ``re`` (every phrase is tried at every word start), so
a prefilter first keeps the phrases the text has the words for (:func:`_candidates`) and the
alternation of just those runs, in the same order: an alternative that cannot match anywhere
changes no match, so the matches are the same. Most tickets leave no phrase to try at all.
The alternation runs case-sensitively on case-folded text, which finds the same (see _fold)
and lets re skip to the phrases' first letters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from shared.frozen import frozen

Level = Literal["low", "medium", "high", "critical"]
LEVELS: tuple[Level, ...] = ("low", "medium", "high", "critical")

# Languages: en, de, et, fr, es, nl, fi, sv. A phrase that is also a common English word is
# given in forms English does not have: Dutch "storing" (outage) as "een storing" or a compound,
# not "*storing" (English "storing", "restoring"); French "lent" (slow) as "très lent".
_CRITICAL = """
outage*|data loss|lost data|lost all data|security breach|data breach|security incident|ransomware|hacked|
compromised|production down|prod down|production is down|major incident|sev1|sev 1|
*ausfall|datenverlust|sicherheitslücke|sicherheitsvorfall|gehackt|produktion steht|
katkestus*|rike|rikke*|andmekadu|andmed kadunud|turvaintsident|turvarikkumine|häkitud|tootmine seisab|
panne générale|perte de données|faille de sécurité|piratage|piraté*|production arrêtée|
caída del servicio|pérdida de datos|brecha de seguridad|hackeado|producción caída|
een storing|de storing|storing bij|storingen|*netwerkstoring|*stroomstoring|*internetstoring|
*serverstoring|*systeemstoring|*mailstoring|*telefoonstoring|
datalek|gegevensverlies|dataverlies|beveiligingsincident|productie ligt plat|
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
blockerad|utelåst|kritisk|nere|produktion*|
isn't working|isn’t working|is not working|does not work|stopped working|can't work|cannot work|
unable to work|cannot access|can't access|unable to access|unreachable|high priority|
*störung*|ausgefallen|nicht erreichbar|kann nicht arbeiten|eilig|
ei saa tööd teha|en panne|ne fonctionne plus|ne marche plus|bloquant|hors service|
impossible de travailler|no puedo trabajar|se cayó|kan niet werken|ligt eruit|zsm|
en pysty työskentelemään|kan inte jobba|kan inte arbeta
"""
# Read with the high phrases but no signal: where the text says the opposite ("not urgent") or the
# word names no problem ("drop down menu", "scroll down"). The alternation takes the longest phrase
# at a position, so their words are not matched again as a shorter phrase.
_HIGH_NEUTRAL = """
not urgent|not very urgent|not critical|nicht dringend|kein notfall|pole kiire|ei ole kiire|pas urgent|
no es urgente|no urgente|niet dringend|geen spoed|ei kiireellinen|ei kiire|inte brådskande|
not urgently|not too urgent|not that urgent|not so urgent|not super urgent|isn't urgent|isn’t urgent|
nothing urgent|not too critical|isn't critical|isn’t critical|not an emergency|no emergency|
nicht so dringend|nicht sehr dringend|eilt nicht|nicht kritisch|
ei ole kiireloomuline|pole kiireloomuline|ei ole kriitiline|pole kriitiline|
pas très urgent|pas urgente|rien d'urgent|rien d’urgent|pas critique|pas une urgence|
nada urgente|no es tan urgente|no es crítico|
niet urgent|niet zo urgent|niet zo dringend|niet kritiek|niet kritisch|
nicht eilig|ei ole kiireellinen|ei kriittinen|ei ole kriittinen|inte akut|inte kritisk|inte så brådskande|
drop down|drop-down|scroll down|scrolling down|close down|closing down|scale down|step down|break down|
narrow down|write down|count down|turn down|top down|top-down|down payment
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
erreur|lenteur|est lent|très lent|trop lent|plantage|lento|fout*|foutmelding|traag|virhe*|hidas|
felmeddelande|långsam|katki|kaatunut|kaatui|averiad*
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


# What re.IGNORECASE treats as equal beyond simple lower-casing, for the letters of the lexicon
# (re._casefix): dotless i and long s; and "İ", which str.lower() turns into two characters.
# Folded, a character of the text equals one of a phrase exactly when IGNORECASE matches them,
# and each character stays one character, a word character or a space as before (the tests
# check this over all of Unicode): the folded text has the text's words in the same places.
def _fold(text: str) -> str:
    # Not str.translate: it looks non-ASCII characters up one by one, ten times slower.
    return text.replace("\u0130", "i").replace("\u0131", "i").replace("\u017f", "s").lower()


_WORD_RUN = re.compile(r"\w+")
# ASCII text's words in one translate (letters lower-cased, every non-\w character a space) and a split.
_ASCII_WORDS = str.maketrans({chr(c): chr(c).lower() if _WORD_RUN.match(chr(c)) else " " for c in range(128)})


def _split(phrases: str) -> set[str]:
    return {p.strip() for p in phrases.split("|") if p.strip()}


@dataclass(frozen=True)
class _Lexicon:
    kind: str  # the signal's name
    level: Level
    raws: tuple[str, ...]  # the phrases, longest first: the order of the alternation
    neutral: frozenset[str] = frozenset()  # of raws: matched, but no signal (their folded text)

    @classmethod
    def of(cls, kind: str, level: Level, phrases: str, neutral: str = "") -> _Lexicon:
        raws = sorted(_split(phrases) | _split(neutral), key=len, reverse=True)
        return cls(kind, level, tuple(raws), frozenset(_fold(p) for p in _split(neutral)))


_LEXICON: tuple[_Lexicon, ...] = (
    _Lexicon.of("critical", "critical", _CRITICAL),
    _Lexicon.of("high", "high", _HIGH, _HIGH_NEUTRAL),
    _Lexicon.of("scope", "high", _SCOPE),
    _Lexicon.of("medium", "medium", _MEDIUM),
)


def _word_start_alternative(raw: str) -> str:
    """``(?<!\\w)`` + the alternative, as an alternative of its own, for the folded phrase.

    Without a leading ``*`` the check goes after the first word: ``error(?<!\\werror)\\w*``, the
    same test, but the alternation then starts with literals, so re finds candidate positions
    with a fast search for the word (alone) or the first letters instead of trying them all.
    """
    alternative = _alternative(_fold(raw))
    if raw.startswith("*"):
        return r"(?<!\w)" + alternative
    first = re.escape(_fold(raw).rstrip("*").split()[0])
    return first + rf"(?<!\w{first})" + alternative.removeprefix(first)


@lru_cache(maxsize=2048)
def _pattern(lexicon: int, chosen: tuple[int, ...]) -> re.Pattern[str]:
    """The alternation of the ``chosen`` phrases of a lexicon, to run on folded text.

    Case-sensitive on folded text, it finds what IGNORECASE finds in the text (see _fold), and
    re can skip by first letters then. Cached under plain ints, cheap to hash.
    """
    return re.compile("|".join(_word_start_alternative(_LEXICON[lexicon].raws[i]) for i in chosen))


@dataclass(frozen=True)
class _Phrase:
    """What a phrase needs of the text's folded words, as a set and as ``spaced``: " w1 w2 ... ".

    A phrase is runs of word characters joined by other characters, and a match has a word of
    the text for each run (folding to it; see _fold). A run next to a ``*`` may be part of a
    longer word: it must occur in ``spaced``, after a space unless a leading ``*`` precedes it,
    before one unless a trailing ``*`` follows it (``parts``). Any other run lies between
    non-word characters or the phrase's ``(?<!\\w)`` and ``(?!\\w)``: a whole word (``words``).
    """

    lexicon: int
    order: int  # in the lexicon's alternation
    words: frozenset[str]
    parts: tuple[str, ...]

    @classmethod
    def of(cls, lexicon: int, order: int, raw: str) -> _Phrase:
        runs = [f" {run} " for run in _WORD_RUN.findall(_fold(raw))]
        if raw.startswith("*"):
            runs[0] = runs[0][1:]
        if raw.endswith("*"):
            runs[-1] = runs[-1][:-1]
        whole = [run.startswith(" ") and run.endswith(" ") for run in runs]
        return cls(
            lexicon,
            order,
            frozenset(run.strip() for run, w in zip(runs, whole, strict=True) if w),
            tuple(run for run, w in zip(runs, whole, strict=True) if not w),
        )


_PHRASES = tuple(_Phrase.of(i, j, raw) for i, lex in enumerate(_LEXICON) for j, raw in enumerate(lex.raws))
_WORDS = frozenset(word for p in _PHRASES for word in p.words)
_BY_WORD: dict[str, list[_Phrase]] = {}  # phrases with whole words, by the longest (rarest, roughly)
for _p in _PHRASES:
    if _p.words:
        _BY_WORD.setdefault(max(_p.words, key=len), []).append(_p)
# The rest are one run with a "*" ("urgent*") or two ("*foo bar*"). Word starts (" urgent", no
# other space) are found by one regex, whose leading literal space lets re jump from space to
# space; at a word start it finds the longest start there, and a phrase needs any prefix of it.
_STARTING = [p for p in _PHRASES if not p.words and p.parts[0].startswith(" ")]
_STARTS = sorted({p.parts[0] for p in _STARTING}, key=len, reverse=True)
_START_RE = re.compile(" (?:" + "|".join(re.escape(s[1:]) for s in _STARTS) + ")")
_BY_START = {s: [p for p in _STARTING if s.startswith(p.parts[0])] for s in _STARTS}
_INSIDE = [p for p in _PHRASES if not p.words and not p.parts[0].startswith(" ")]  # substring tests
# Those grouped by their first part's last few characters, a substring of it: 7 of the 10 end in
# "storing ". A text without a group's key skips the group; the rest are tested in full below.
# Four tests instead of ten: 2.6 -> 0.7 µs a text on the bench's tickets.
_INSIDE_KEY = 5
_INSIDE_BY_KEY: tuple[tuple[str, tuple[_Phrase, ...]], ...] = tuple(
    (key, tuple(p for p in _INSIDE if p.parts[0][-_INSIDE_KEY:] == key))
    for key in dict.fromkeys(p.parts[0][-_INSIDE_KEY:] for p in _INSIDE)
)


def _candidates(words: Iterable[str], spaced: str) -> dict[int, set[int]]:
    """By lexicon, the phrases that may match a text with these folded words (see _Phrase)."""
    present = _WORDS.intersection(words)
    maybe = [p for word in present for p in _BY_WORD.get(word, ()) if p.words <= present]
    maybe += [p for start in set(_START_RE.findall(spaced)) for p in _BY_START[start]]
    maybe += [p for key, group in _INSIDE_BY_KEY if key in spaced for p in group]
    chosen: dict[int, set[int]] = {}
    for p in maybe:
        if all(part in spaced for part in p.parts):
            chosen.setdefault(p.lexicon, set()).add(p.order)
    return chosen


# No real word is this long; base64 blobs and hashes are, and the compound-word patterns (\w*)
# would cost quadratic time on them, so they are blanked before matching.
_LONG = 48
_LONG_TOKEN = re.compile(rf"\w{{{_LONG},}}")


def _blank_long_tokens(text: str) -> str:
    # A \w run lies inside one whitespace-free chunk: without a chunk of 48+ characters (the
    # usual ticket) there is nothing to blank, and splitting costs a fraction of the regex scan.
    if max(map(len, text.split()), default=0) < _LONG:
        return text
    return _LONG_TOKEN.sub(" ", text)


# A closing and the lines under it up to a blank line: the sender's name, title and company
# ("Production Manager", "Emergency Department", "Critical Systems Ltd"), which made every ticket of
# theirs urgent. Matched on folded text; blanked with spaces, so positions stay the text's. The
# closing starts a line after the first (the subject's).
_SIGN_OFF = re.compile(
    r"(?<=\n)[ \t]*(?:(?:best|kind|warm|many)\s+regards|regards|mit freundlichen grüßen|freundliche grüße|"
    r"viele grüße|beste grüße|lugupidamisega|parimate soovidega|bien cordialement|cordialement|"
    r"saludos cordiales|saludos|atentamente|met vriendelijke groet(?:en)?|vriendelijke groet(?:en)?|"
    r"ystävällisin terveisin|terveisin|med vänlig(?:a)? hälsning(?:ar)?|vänliga hälsningar)(?!\w)"
    # At most 8 lines under it, and not into a mail quoted below ("-----Original Message-----",
    # "From: ..."), which has the ticket's problem when it was forwarded.
    r"[ \t]*[,.!]?[ \t]*\r?(?:\n(?![ \t]*(?:--|__|from:|von:|de:|van:|från:|lähettäjä:|saatja:))"
    r"[ \t]*\S[^\n]*){0,8}"
)


def _without_sign_off(folded: str) -> str:
    # Read only for texts with a candidate phrase. A closing line with one under it needs two line
    # breaks, and a word of a closing: most texts skip the regex.
    if folded.count("\n") < 2 or not (
        "regards" in folded
        or "grüße" in folded
        or "lugupidamisega" in folded
        or "soovidega" in folded
        or "cordialement" in folded
        or "saludos" in folded
        or "atentamente" in folded
        or "groet" in folded
        or "terveisin" in folded
        or "hälsning" in folded
    ):
        return folded
    return _SIGN_OFF.sub(lambda m: " " * len(m.group()), folded)


def _phrases(text: str, ascii_words: list[str] | None = None) -> list[list[str]]:
    """By lexicon, the phrases matched in ``text`` once long tokens are blanked, in order.

    Matches in ASCII text come out lower-cased. ``ascii_words``: see ``scan_text``.
    """
    if text.isascii():
        # Words from before the blanking: the long ones only let more phrases through, still sound.
        if ascii_words is None:
            spaced = f" {text.translate(_ASCII_WORDS)} "
            words: list[str] = spaced.split()
        else:
            # Single spaces between the words: the same substring tests, as no part has an inner space.
            words = ascii_words
            spaced = f" {' '.join(words)} "
        chosen = _candidates(words, spaced)
        if not chosen:
            return [[] for _ in _LEXICON]  # the usual ticket: nothing to match, nothing to blank
        if max(map(len, words)) >= _LONG:
            text = _LONG_TOKEN.sub(" ", text)
        # = _fold(text) for ASCII: the matches are the text's, lower-cased
        folded = _without_sign_off(text.lower())
        return [
            [m for m in _pattern(i, tuple(sorted(chosen[i]))).findall(folded) if _signal(i, m)]
            if i in chosen
            else []
            for i in range(len(_LEXICON))
        ]
    text = _blank_long_tokens(text)
    folded = _fold(text)
    words = _WORD_RUN.findall(folded)
    chosen = _candidates(words, f" {' '.join(words)} ")
    if chosen:
        folded = _without_sign_off(folded)
    return [
        [
            text[m.start() : m.end()]
            for m in _pattern(i, tuple(sorted(chosen[i]))).finditer(folded)
            if _signal(i, m.group())
        ]
        if i in chosen
        else []
        for i in range(len(_LEXICON))
    ]


def _signal(lexicon: int, folded_match: str) -> bool:
    """Whether a match (of the folded text) is a signal: not one of its lexicon's neutral phrases."""
    neutral = _LEXICON[lexicon].neutral
    return not neutral or " ".join(folded_match.split()) not in neutral


_CAPS_WORD = re.compile(r"(?<!\w)[^\W\d_]{3,}(?!\w)")
_ASCII_CAPS_WORD = re.compile(r"(?<!\w)[A-Z]{3,}(?!\w)")  # the all-caps words of ASCII text
_NOT_CAPITAL = bytes(c for c in range(256) if not ord("A") <= c <= ord("Z"))


@frozen
class UrgencyAssessment:
    level: Level
    signals: list[str] = field(default_factory=list)  # human-readable reasons, e.g. "critical: 'data loss'"

    @property
    def rank(self) -> int:
        """1 (low) to 4 (critical)."""
        return LEVELS.index(self.level) + 1


def _shouting(text: str) -> bool:
    """Whether ``text``, once long tokens are blanked, shouts."""
    # Both tests below need two all-caps words of three letters, each letter A-Z or non-ASCII:
    # six such characters, counted without a regex scan. Blanking only removes words: it holds before.
    ascii_part = text.encode("ascii", "ignore")
    if len(ascii_part.translate(None, _NOT_CAPITAL)) + len(text) - len(ascii_part) < 6:
        return False
    if text.isascii() and len(_ASCII_CAPS_WORD.findall(text)) < 2:
        return False
    words = _CAPS_WORD.findall(_blank_long_tokens(text))
    caps = [w for w in words if w.isupper()]
    # Three different capitalised words, or most of the text, is shouting; a repeated acronym is not.
    return len(set(caps)) >= 3 or (len(words) >= 2 and len(caps) / len(words) >= 0.6)


@frozen
class TextUrgency:
    """What the subject and description say, before tags: the costly part of an assessment.

    The router scans a whole batch's texts in one pass (see ``text_signals_many``), which costs
    about half as much per ticket as scanning each one between its other routing steps."""

    phrases: tuple[tuple[str, ...], ...]  # per lexicon: the matched phrases, normalised and sorted
    exclaims: bool
    shouts: bool


# What most tickets match: no phrase of any lexicon (immutable, so shared).
_NO_PHRASES: tuple[tuple[str, ...], ...] = tuple(() for _ in _LEXICON)


# Lines quoted from an earlier mail ("> URGENT: the server is down" under "thanks, it works now"):
# what was said before, not this ticket's urgency. A reply quoting an alarm was read as the alarm.
_QUOTED_LINE = re.compile(r"^>[^\n]*", re.MULTILINE)


def _unquoted(description: str) -> str:
    """``description`` without its quoted lines (starting with ">"), as the urgency scan reads it."""
    # Two substring tests first: most tickets quote nothing and skip the regex.
    if description.startswith(">") or "\n>" in description:
        return _QUOTED_LINE.sub("", description)
    return description


def scan_text(subject: str, description: str, ascii_words: list[str] | None = None) -> TextUrgency:
    """``ascii_words``: when the text is ASCII, its runs of word characters, lower-cased, if the
    caller has them (the classifier's ``batch_tokens`` of the same text): read for ASCII text only,
    they save splitting it again (~3 µs of a bench ticket's ~14)."""
    read = _unquoted(description)
    if read is not description:
        ascii_words = None  # the words of the whole text, whose quoted lines may not be ASCII
    text = f"{subject}\n{read}"
    found = _phrases(text, ascii_words)
    return TextUrgency(
        # Without a match, no sets to sort: ~0.8 µs of a bench ticket's ~14.
        tuple(tuple(sorted({" ".join(m.lower().split()) for m in matches})) for matches in found)
        if any(found)
        else _NO_PHRASES,
        # Blanking long tokens changes no "!" (and _shouting blanks for itself).
        "!!" in text or text.count("!") >= 3,
        _shouting(text),
    )


def assess_urgency(
    subject: str, description: str, tags: Iterable[str] = (), scanned: TextUrgency | None = None
) -> UrgencyAssessment:
    """``scanned``: ``scan_text(subject, description)`` when it was computed already."""
    scan = scanned if scanned is not None else scan_text(subject, description)
    signals: list[str] = []
    rank = 1
    found: set[str] = set()
    for lexicon, matches in zip(_LEXICON, scan.phrases, strict=True):
        if matches:
            found.add(lexicon.kind)
            rank = max(rank, LEVELS.index(lexicon.level) + 1)
            signals.extend(f"{lexicon.kind}: {m!r}" for m in matches)
    for tag in tags:
        tag_level = _TAG_LEVELS.get(tag.strip().lower())
        if tag_level is not None:
            rank = max(rank, LEVELS.index(tag_level) + 1)
            signals.append(f"tag: {tag.strip().lower()!r}")
    if "scope" in found and found & {"high", "critical"}:
        rank = 4
        signals.append("scope: many users affected by a high-urgency problem")
    tone = []
    if scan.exclaims:
        tone.append("tone: exclamation marks")
    if scan.shouts:
        tone.append("tone: shouting (all caps)")
    if tone:
        signals.extend(tone)
        rank = max(rank, min(rank + 1, 3))  # tone raises by one level, never to critical on its own
    return UrgencyAssessment(LEVELS[rank - 1], signals)
