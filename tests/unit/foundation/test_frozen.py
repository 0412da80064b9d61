"""@frozen: equal and hashable like a frozen dataclass, and read-only for mypy (which CI runs)."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

from mypy import api as mypy_api

from shared.frozen import frozen


@frozen
class _Guess:
    language: str | None
    confidence: float = 0.0


def test_values_compare_hash_copy_and_pickle_as_a_frozen_dataclass():
    guess = _Guess("de", 0.9)
    assert guess == _Guess("de", 0.9) and guess != _Guess("fr", 0.9)
    assert hash(guess) == hash(_Guess("de", 0.9))
    assert {guess: 1}[_Guess("de", 0.9)] == 1
    assert dataclasses.replace(guess, language="fr") == _Guess("fr", 0.9)
    assert pickle.loads(pickle.dumps(guess)) == guess
    assert not hasattr(guess, "__dict__")  # slots: no attribute can be added by mistake


def test_mypy_refuses_to_assign_a_field(tmp_path: Path):
    module = tmp_path / "uses_frozen.py"
    module.write_text(
        "from shared.frozen import frozen\n\n"
        "@frozen\nclass Point:\n    x: int\n\n"
        "point = Point(1)\npoint.x = 2\n"
    )
    out, _, status = mypy_api.run(["--no-incremental", "--follow-imports=silent", str(module)])
    assert status == 1
    assert 'uses_frozen.py:8: error: Property "x" defined in "Point" is read-only' in out
