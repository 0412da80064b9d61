import pytest
from pydantic import ValidationError

from services.router.sla.priority import DEFAULT_MATRIX, Level, PriorityMatrix, parse_level, priority_for
from shared.events import Priority

# The table of the module docstring, row = urgency low..critical, column = impact low..critical.
EXPECTED = [
    ["P4", "P4", "P3", "P2"],
    ["P4", "P3", "P2", "P2"],
    ["P3", "P2", "P2", "P1"],
    ["P2", "P2", "P1", "P1"],
]


@pytest.mark.parametrize("urgency", range(1, 5))
@pytest.mark.parametrize("impact", range(1, 5))
def test_default_matrix_matches_documented_table(urgency: int, impact: int) -> None:
    assert priority_for(urgency, impact) == Priority(EXPECTED[urgency - 1][impact - 1])


def test_words_numbers_and_strings_are_equivalent() -> None:
    assert priority_for("critical", "high") == priority_for(4, 3) == Priority.P1
    assert priority_for("4", Level.HIGH) == Priority.P1
    assert priority_for(" Low ", "medium") == Priority.P4


@pytest.mark.parametrize("bad", [0, 5, "urgent-ish", ""])
def test_unknown_level_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="level"):
        parse_level(bad)  # type: ignore[arg-type]


def test_custom_matrix_from_json_with_word_keys() -> None:
    cells = {u: {i: "P3" for i in ("low", "medium", "high", "critical")} for u in ("low", "medium", "high")}
    cells["critical"] = {"1": "P1", "2": "P1", "3": "P1", "4": "P1"}
    matrix = PriorityMatrix.model_validate({"cells": cells})
    assert matrix.priority_for("critical", "low") == Priority.P1
    assert priority_for(1, 4, matrix) == Priority.P3
    assert PriorityMatrix.model_validate_json(matrix.model_dump_json()) == matrix


def test_incomplete_matrix_names_missing_cells() -> None:
    cells = {str(u): {str(i): "P3" for i in range(1, 5)} for u in range(1, 5)}
    del cells["2"]["4"]
    del cells["4"]
    with pytest.raises(ValidationError) as err:
        PriorityMatrix.model_validate({"cells": cells})
    message = str(err.value)
    assert "urgency=medium/impact=critical" in message
    assert "urgency=critical/impact=low" in message
    assert "urgency=low/impact=low" not in message


def test_default_matrix_is_monotonic() -> None:
    rank = {Priority.P4: 0, Priority.P3: 1, Priority.P2: 2, Priority.P1: 3}
    for u in Level:
        for i in Level:
            here = rank[DEFAULT_MATRIX.priority_for(u, i)]
            if u < Level.CRITICAL:
                assert rank[DEFAULT_MATRIX.priority_for(Level(u + 1), i)] >= here
            if i < Level.CRITICAL:
                assert rank[DEFAULT_MATRIX.priority_for(u, Level(i + 1))] >= here
