from __future__ import annotations

import random
from pathlib import Path

import pytest

REAL_DATA = Path(__file__).parents[3] / ".." / "shared" / "datasets" / "it_tickets.csv.gz"

_VOCAB = {
    "network": "vpn wifi router switch dns ping latency firewall cable connection",
    "access": "password login account locked reset permission sso token mfa grant",
    "hardware": "laptop screen keyboard mouse battery printer dock charger monitor fan",
}
_COMMON = ["please", "help", "thanks", "issue", "today", "user", "team", "request", "hello", "regards"]


@pytest.fixture(scope="session")
def synthetic() -> tuple[list[str], list[str]]:
    """Three classes with overlapping vocabulary, so the model is right often but not always."""
    rng = random.Random(7)
    texts, labels = [], []
    for _ in range(200):
        for label, words in _VOCAB.items():
            own = words.split()
            other = " ".join(w for k, ws in _VOCAB.items() if k != label for w in ws.split()).split()
            n_own = rng.randint(1, 4)
            tokens = rng.sample(own, n_own) + rng.sample(other, rng.randint(0, 3)) + rng.sample(_COMMON, 3)
            rng.shuffle(tokens)
            texts.append(" ".join(tokens))
            labels.append(label)
    return texts, labels


@pytest.fixture(scope="session")
def real_sample() -> tuple[list[str], list[str]]:
    if not REAL_DATA.is_file():
        pytest.skip(f"real dataset not available at {REAL_DATA}")
    from services.router.classification import load_labelled_file

    texts, labels = load_labelled_file(REAL_DATA)
    rng = random.Random(0)
    idx = rng.sample(range(len(texts)), 4000)
    return [texts[i] for i in idx], [labels[i] for i in idx]
