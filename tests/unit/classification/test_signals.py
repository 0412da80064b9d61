from __future__ import annotations

import pytest

from services.router.classification import DEFAULT_LANGUAGES, assess_urgency, detect_language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ma ei saa oma kontole sisse logida, palun aidake mind võimalikult kiiresti.", "et"),
        ("I cannot log in to my account since this morning, please reset my password.", "en"),
        ("Ich kann mich seit heute Morgen nicht mehr anmelden, bitte setzen Sie mein Passwort zurück.", "de"),
    ],
)
def test_detects_et_en_de(text, expected):
    guess = detect_language(text)
    assert guess.language == expected
    assert guess.confidence > 0.5
    assert detect_language(text, languages=None).language == expected


def test_short_or_empty_text_has_no_language():
    assert detect_language("").language is None
    assert detect_language("ok thx").language is None


def test_language_set():
    assert len(DEFAULT_LANGUAGES) >= 20 and {"et", "en", "de"} <= DEFAULT_LANGUAGES
    french = "Bonjour, je ne peux pas imprimer"
    assert detect_language(french, languages={"en", "de"}).language in {"en", "de"}
    with pytest.raises(ValueError, match="does not know"):
        detect_language("some long enough english text here", languages={"en", "xx"})


@pytest.mark.parametrize(
    ("subject", "description", "level", "signal"),
    [
        ("Printer toner", "Please order a new toner cartridge when convenient.", "low", None),
        ("Excel error", "I get an error when saving", "medium", "medium: 'error'"),
        ("VPN", "I cannot log in since the update", "high", "high: 'cannot log in'"),
        ("Datenverlust", "Nach dem Update fehlen alle Dateien", "critical", "critical: 'datenverlust'"),
        ("Systemausfall", "", "critical", "critical: 'systemausfall'"),
        ("Server on maas", "palun kiiresti", "high", "high: 'kiiresti'"),
        ("Teenuse katkestus", "", "critical", "critical: 'katkestus'"),
        ("Panne", "Impossible de se connecter", "high", "high: 'impossible de se connecter'"),
        ("Correo", "No funciona desde ayer", "high", "high: 'no funciona'"),
        ("Mail", "Werkt niet, graag zo snel mogelijk", "high", "high: 'zo snel mogelijk'"),
        ("Sähköposti", "ei toimi", "high", "high: 'ei toimi'"),
        ("Skrivare", "fungerar inte", "high", "high: 'fungerar inte'"),
        ("Email down", "All users are affected", "critical", "scope: 'all users'"),
    ],
)
def test_urgency_lexicon(subject, description, level, signal):
    result = assess_urgency(subject, description)
    assert result.level == level, result.signals
    if signal is None:
        assert result.signals == []
    else:
        assert signal in result.signals


def test_word_boundaries():
    # "download" and "errorless" must not match "down" / "error" (no trailing wildcard on "down").
    assert assess_urgency("Download folder", "Where is my download?").level == "low"


def test_tone_raises_but_never_to_critical():
    assert assess_urgency("Laptop", "Where is my new laptop!!").level == "medium"
    shouting = assess_urgency("PLEASE FIX THIS NOW", "my monitor flickers")
    assert "tone: shouting (all caps)" in shouting.signals and shouting.level == "medium"
    assert assess_urgency("URGENT!!!", "SERVER NOT WORKING").level == "high"
    assert assess_urgency("VPN config", "VPN needs the new SAML cert").level == "low"  # acronyms


def test_tags_and_rank():
    result = assess_urgency("Question", "How do I change my wallpaper?", tags=["P1"])
    assert result.level == "critical" and result.rank == 4 and "tag: 'p1'" in result.signals


def test_urgency_is_fast_on_pasted_blobs_and_many_exclamation_marks():
    import base64
    import os
    import time

    blob = base64.b64encode(os.urandom(7_500)).decode() + " " + "a" * 20_000 + " !" * 3_000
    started = time.process_time()
    result = assess_urgency("x", blob)
    # linear time: well under a second even on a loaded machine (the old patterns took seconds)
    assert time.process_time() - started < 1.0
    assert "tone: exclamation marks" in result.signals


def test_many_users_with_a_critical_problem_is_critical():
    assert assess_urgency("Outage", "all users affected").level == "critical"


@pytest.mark.parametrize(
    ("subject", "description", "level"),
    [
        # English words spelt like a Dutch or French phrase: "storing" (nl: outage) made these critical.
        ("Backup", "Please help restoring the snapshot taken Saturday morning", "low"),
        ("Shared folder", "We intend storing video recordings on the shared drive", "low"),
        ("Laptop", "The laptop lent to our intern needs to be returned", "low"),
        # The Dutch and French they were there for still count.
        ("Mail", "Er is een storing bij de mailserver", "critical"),
        ("Netwerkstoring", "op kantoor", "critical"),
        ("Réseau", "Le réseau est très lent", "medium"),
    ],
)
def test_english_words_spelt_like_another_languages_phrase_are_not_signals(subject, description, level):
    assert assess_urgency(subject, description).level == level, assess_urgency(subject, description).signals


@pytest.mark.parametrize(
    ("subject", "description", "level"),
    [
        # A high-urgency word where the text says the opposite, or where it names no problem.
        ("New monitor", "Not urgent, whenever you have time", "low"),
        ("Report", "This is not critical, next week is fine", "low"),
        ("Bericht", "Nicht dringend, bitte bis Freitag", "low"),
        ("Form", "Please add a drop down list of cost centres", "low"),
        ("Drop-down menu", "has the wrong entries", "low"),
        ("Guide", "Scroll down to find file sharing", "low"),
        ("Site", "The site was transferred, please close down the old one", "low"),
        # The words themselves still count.
        ("Email down", "Not urgent? It is down for everyone", "critical"),
        ("Urgent", "not working", "high"),
    ],
)
def test_a_high_urgency_word_read_in_a_phrase_that_is_no_problem_is_no_signal(subject, description, level):
    result = assess_urgency(subject, description)
    assert result.level == level, result.signals


@pytest.mark.parametrize(
    ("subject", "description"),
    [
        # Negated urgency words read as a signal: each of these was "high" and jumped the queue.
        ("Toner", "It isn't urgent, whenever you can"),
        ("Toner", "It isn’t urgent"),
        ("Toner", "Not too urgent, next week is fine"),
        ("Toner", "Not an emergency, just a question"),
        ("Toner", "no emergency, but please have a look"),
        ("Toner", "Nothing urgent"),
        ("Toner", "This is not urgently needed"),
        ("Drucker", "Eilt nicht, bitte bis Freitag"),
        ("Drucker", "Nicht kritisch"),
        ("Printer", "Het is niet urgent"),
        ("Printer", "Niet kritiek"),
        ("Skrivare", "Det är inte akut"),
        ("Tulostin", "Ei kriittinen"),
        ("Printer", "Ei ole kiireloomuline"),
        ("Imprimante", "Rien d'urgent, ce n'est pas critique"),
        ("Imprimante", "Ce n'est pas une urgence"),
        ("Impresora", "Nada urgente, no es crítico"),
    ],
)
def test_negated_urgency_in_each_supported_language_is_no_signal(subject, description):
    result = assess_urgency(subject, description)
    assert result.level == "low", result.signals


def test_the_urgency_word_still_counts_outside_its_negation():
    assert assess_urgency("Urgent", "the printer isn't urgent but the server is down").level == "high"
    assert assess_urgency("Niet urgent", "maar de server werkt niet").level == "high"


LINK = (
    "https://portal.example.com/sharepoint/sites/finance/Shared%20Documents/Forms/AllItems.aspx?id=%2Fsites"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # py3langid read the link's and the sign-off's letters as words: unknown, and English.
        (f"Tere, link ei avane. Palun aidake {LINK}", "et"),
        ("Tere, palun lisage ligipääs\n\nSent from my iPhone", "et"),
        ("Bonjour, imprimante en panne.\n\nSent from my iPhone", "fr"),
        # Addresses and a sign-off alone are too few letters to guess from.
        (LINK, None),
        ("Tere!\n\nSent from my iPhone", None),
        ("john.smith@example.com; mary.jones@example.com; support@example.com", None),
    ],
)
def test_addresses_and_mobile_sign_offs_do_not_decide_the_language(text, expected):
    from services.router.classification import detect_languages

    assert detect_language(text).language == expected
    batch = detect_languages([text] * 8)  # the batched walk reads the same text
    assert {guess.language for guess in batch} == {expected}


@pytest.mark.parametrize(
    ("subject", "description", "level"),
    [
        # Everyday ways of saying it is broken or blocks work, in the lexicon's languages: all "low"
        # before ("doesn't work" and "not working" were there, "does not work" and "isn't working" not).
        ("Outlook", "Outlook isn't working since the update", "high"),
        ("App", "The app does not work", "high"),
        ("Outlook", "Outlook stopped working", "high"),
        ("Laptop", "I can't work, the laptop is dead", "high"),
        ("Share", "I cannot access the finance share", "high"),
        ("Site", "The intranet is unreachable", "high"),
        ("VPN", "Please treat with high priority", "high"),
        ("Drucker", "Störung seit heute früh", "high"),
        ("Netzwerkstörung", "im Büro", "high"),
        ("Server", "Der Server ist ausgefallen, ich kann nicht arbeiten", "high"),
        ("Portal", "Server nicht erreichbar", "high"),
        ("Serveur", "Le serveur est en panne", "high"),
        ("Outlook", "Outlook ne fonctionne plus", "high"),
        ("Serveur", "Le serveur est hors service", "high"),
        ("Servidor", "El servidor se cayó, no puedo trabajar", "high"),
        ("Server", "Server ligt eruit, ik kan niet werken", "high"),
        ("Server", "Graag zsm oplossen", "high"),
        ("Palvelin", "En pysty työskentelemään", "high"),
        ("Server", "Jag kan inte jobba", "high"),
        ("Arvuti", "Ma ei saa tööd teha", "high"),
        ("Arvuti", "Arvuti on katki", "medium"),
        ("Palvelin", "Palvelin on kaatunut", "medium"),
        ("Impresora", "La impresora está averiada", "medium"),
        # Negated, still no signal.
        ("Drucker", "Nicht eilig", "low"),
    ],
)
def test_common_ways_of_saying_it_is_broken_are_signals(subject, description, level):
    result = assess_urgency(subject, description)
    assert result.level == level, result.signals


def test_lines_quoted_from_an_earlier_mail_are_not_this_tickets_urgency():
    reply = "Thanks, it works now.\n\n> On Monday Bob wrote:\n> URGENT: the server is down for everyone!!!"
    assert assess_urgency("Re: server", reply).level == "low"
    # What the ticket says itself still counts, above or below the quote.
    assert assess_urgency("Re: server", f"{reply}\nStill not working").level == "high"
    assert assess_urgency("Re: server", "> fixed?\nNo, it is down for everyone").level == "critical"


def test_a_batch_scans_a_quoting_ticket_as_a_single_one():
    # The batch hands the scan the classifier's words of the whole text; with a non-ASCII quoted line
    # those lack 1-letter runs ("can't" -> "can", "t"), which the rest, ASCII, needs.
    from services.router.classification import batch_tokens, scan_text

    subject, description = "VPN", "I can't log in\n> Grüße, Jürgen"
    runs = batch_tokens([f"{subject}\n{description}"])[1][0]
    assert scan_text(subject, description, runs) == scan_text(subject, description)
    assert assess_urgency(subject, description).level == "high"


@pytest.mark.parametrize(
    "description",
    [
        # The sender's title or department under a closing made every ticket of theirs urgent.
        "Please order toner.\n\nBest regards,\nJohn Smith\nProduction Manager",
        "Please order toner.\r\n\r\nKind regards,\r\nMaria\r\nEmergency Department, City Hospital\r\n",
        "Bitte Toner bestellen.\n\nMit freundlichen Grüßen\nHans Meier\nLeiter Produktion",
        "Palun toonerit tellida.\n\nLugupidamisega\nJaan Tamm\nTootmisjuht, Kriitiline Taristu OÜ",
    ],
)
def test_a_signature_under_a_closing_is_not_the_tickets_urgency(description):
    result = assess_urgency("Toner", description)
    assert result.level == "low", result.signals


def test_what_the_ticket_says_around_a_signature_still_counts():
    assert assess_urgency("Server", "It is down.\n\nBest regards,\nJohn").level == "high"
    assert assess_urgency("Re", "Regards,\nJohn\n\nP.S. the server is down").level == "high"
    # A forwarded mail right under the closing is the ticket's problem.
    forwarded = "See below.\nRegards,\nJohn\n-----Original Message-----\nFrom: Bob\nSubject: URGENT"
    assert assess_urgency("Fwd", forwarded).level == "high"
