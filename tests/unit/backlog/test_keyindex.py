from __future__ import annotations

import random

from services.metrics.backlog.keyindex import SlotIndex, key_hash


def test_slot_index_matches_dict_under_churn() -> None:
    rng = random.Random(3)
    index, ref = SlotIndex(4), {}
    # Small hash values force long probe runs and wrap-around in the backward-shift deletion.
    pool = [rng.randrange(1, 1 << 64) for _ in range(300)] + list(range(1, 40))
    for step in range(20_000):
        h = rng.choice(pool)
        if rng.random() < 0.55:
            index.put(h, step)
            ref[h] = step
        else:
            index.remove(h)
            ref.pop(h, None)
        if step % 500 == 0:
            assert dict(index.items()) == ref
            assert all(index.get(k) == v for k, v in ref.items())
    assert index.count == len(ref)
    assert all(index.get(h) == -1 for h in pool if h not in ref)


def test_key_hash_is_stable_and_nonzero() -> None:
    assert key_hash("zendesk:1") == key_hash("zendesk:1") != key_hash("zendesk:2")
    assert key_hash("") != 0
