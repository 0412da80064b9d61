"""The batched language walk gives py3langid's own answer for every text, whatever the mix."""

from __future__ import annotations

import random

import pytest

from services.router.classification import detect_language, detect_languages, language

MIXED = [
    "Ma ei saa oma kontole sisse logida, palun aidake mind võimalikult kiiresti.",
    "I cannot log in to my account since this morning, please reset my password.",
    "Ich kann mich seit heute Morgen nicht mehr anmelden, bitte setzen Sie mein Passwort zurück.",
    "Здравствуйте, не работает почта уже второй день, помогите пожалуйста",
    "ПРИНТЕР НЕ ПЕЧАТАЕТ С УТРА СРОЧНО",  # all caps: lower-cased before the walk
    "Γεια σας, ο υπολογιστής μου δεν λειτουργεί από χθες",
    "Bonjour, je ne peux pas imprimer depuis la mise à jour",
    "",
    "ok thx",
    "12345 67890 !!! ??? ... 2026-11-24",
    "x" * 40,
    "broken \udcff surrogate in an otherwise English sentence about printers",
    "Tere! Minu arvuti ei lülitu sisse. " * 40,  # longer than the rest: a late finisher
]


def _same(texts: list[str], **kwargs: object) -> None:
    batch = detect_languages(texts, **kwargs)  # type: ignore[arg-type]
    assert len(batch) == len(texts)
    for text, guess in zip(texts, batch, strict=True):
        single = detect_language(text, **kwargs)  # type: ignore[arg-type]
        assert guess.language == single.language, text
        assert guess.confidence == pytest.approx(single.confidence, abs=1e-4), text


def test_batch_matches_single_detection_on_a_mixed_batch():
    _same(MIXED)
    assert [g.language for g in detect_languages(MIXED[:3])] == ["et", "en", "de"]


def test_batch_matches_single_detection_with_every_language_and_a_restricted_set():
    _same(MIXED, languages=None)  # None: every language of the model
    _same(MIXED, languages=frozenset({"en", "de"}))


def test_batch_matches_on_random_word_salad_of_varied_length():
    rng = random.Random(3)
    words = " ".join(MIXED).split()
    texts = [" ".join(rng.choices(words, k=rng.randint(0, 120))) for _ in range(200)]
    _same(texts)


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[frozenset[str] | None]:
    """The language sets of the batched walks taken (each takes the automaton once)."""
    taken: list[frozenset[str] | None] = []
    automaton = language._automaton

    def counted(languages: frozenset[str] | None) -> object:
        taken.append(languages)
        return automaton(languages)

    monkeypatch.setattr(language, "_automaton", counted)
    return taken


def test_a_few_texts_are_guessed_one_by_one_with_the_same_answers(walks: list[frozenset[str] | None]):
    for n in range(1, language.BATCH_FROM + 1):
        _same(MIXED[:n])
    # Only the call with BATCH_FROM texts took the batched walk.
    assert len(walks) == 1


def test_empty_batch_and_order_kept():
    assert detect_languages([]) == []
    reversed_guesses = detect_languages(MIXED[::-1])
    assert reversed_guesses == detect_languages(MIXED)[::-1]


@pytest.mark.parametrize("segment_bytes", [1, 5, 64])
def test_cutting_texts_into_segments_changes_no_guess(monkeypatch: pytest.MonkeyPatch, segment_bytes: int):
    # One-byte segments restart the walk before every byte: each lead-in must bring the automaton
    # to the full walk's state, also inside multi-byte characters (Cyrillic, Greek, Estonian).
    monkeypatch.setattr(language, "SEGMENT_BYTES", segment_bytes)
    _same(MIXED)
    rng = random.Random(segment_bytes)
    words = " ".join(MIXED).split()
    _same([" ".join(rng.choices(words, k=rng.randint(5, 60))) for _ in range(40)])


@pytest.mark.parametrize("chunk", [6, 7, 50])
def test_a_batch_guessed_in_parts_gives_the_same_guesses_in_order(
    monkeypatch: pytest.MonkeyPatch, chunk: int
):
    # Parts of 7 out of 13 texts leave 6 for the last walk; of 6 out of 200, a last part of 2 that
    # is guessed one by one.
    monkeypatch.setattr(language, "CHUNK_TEXTS", chunk)
    _same(MIXED)
    rng = random.Random(chunk)
    words = " ".join(MIXED).split()
    _same([" ".join(rng.choices(words, k=rng.randint(0, 60))) for _ in range(200)])


def test_a_backlogs_batch_is_walked_in_parts(walks: list[frozenset[str] | None]):
    texts = MIXED * 100  # 1,300 texts
    assert [g.language for g in detect_languages(texts)] == [
        g.language for g in detect_languages(MIXED)
    ] * 100
    assert len(walks) == 3 + 1  # 512 + 512 + 276, then MIXED's own


def test_keys_of_64_bits_for_batches_too_big_for_32_give_the_same_guesses(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(language, "INT32_KEYS_BELOW", 0)
    _same(MIXED)


def test_loading_the_model_builds_the_batched_walk_then_not_the_first_batch(monkeypatch: pytest.MonkeyPatch):
    language._automaton.cache_clear()
    language.load_language_model()

    def build_again(*args: object) -> int:
        raise AssertionError("the first batch built the walk's tables")

    monkeypatch.setattr(language, "_max_depth", build_again)
    _same(MIXED)
