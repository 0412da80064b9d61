"""Urgency signals from a multilingual phrase lexicon plus cheap tone and scope cues.

Phrases are matched on word boundaries, case-insensitively, with precompiled regexes. In a
phrase, a leading ``*`` lets it end a compound word (German "Systemausfall"), a trailing ``*``
lets it take an inflection or continue into a compound (Estonian "katkestuse").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
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


def _compile(phrases: str) -> re.Pattern[str]:
    parts = []
    for raw in sorted({p.strip() for p in phrases.split("|") if p.strip()}, key=len, reverse=True):
        core = r"\s+".join(re.escape(w) for w in raw.strip("*").split())
        prefix = r"\w*" if raw.startswith("*") else ""
        suffix = r"\w*" if raw.endswith("*") else r"(?!\w)"
        parts.append(prefix + core + suffix)
    # One word-start check in front of the alternation: mid-word positions fail at once instead
    # of trying every phrase (20x faster). Same matches: a leading \w* never starts mid-word.
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + ")", re.IGNORECASE)


_LEXICON: tuple[tuple[str, Level, re.Pattern[str]], ...] = (
    ("critical", "critical", _compile(_CRITICAL)),
    ("high", "high", _compile(_HIGH)),
    ("scope", "high", _compile(_SCOPE)),
    ("medium", "medium", _compile(_MEDIUM)),
)
# No real word is this long; base64 blobs and hashes are, and the compound-word patterns (\w*)
# would cost quadratic time on them, so they are blanked before matching.
_LONG_TOKEN = re.compile(r"\w{48,}")
_CAPS_WORD = re.compile(r"(?<!\w)[^\W\d_]{3,}(?!\w)")


@dataclass(frozen=True)
class UrgencyAssessment:
    level: Level
    signals: list[str] = field(default_factory=list)  # human-readable reasons, e.g. "critical: 'data loss'"

    @property
    def rank(self) -> int:
        """1 (low) to 4 (critical)."""
        return LEVELS.index(self.level) + 1


def _shouting(text: str) -> bool:
    words = _CAPS_WORD.findall(text)
    caps = [w for w in words if w.isupper()]
    # Three different capitalised words, or most of the text, is shouting; a repeated acronym is not.
    return len(set(caps)) >= 3 or (len(words) >= 2 and len(caps) / len(words) >= 0.6)


def assess_urgency(subject: str, description: str, tags: Iterable[str] = ()) -> UrgencyAssessment:
    text = _LONG_TOKEN.sub(" ", f"{subject}\n{description}")
    signals: list[str] = []
    rank = 1
    found: set[str] = set()
    for kind, level, pattern in _LEXICON:
        matches = sorted({" ".join(m.group(0).lower().split()) for m in pattern.finditer(text)})
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
