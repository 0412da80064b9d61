"""Settings that the services parse later are checked when read, naming the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import CommonSettings, RouterSettings


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("router_priority_matrix", "{bad", "not JSON"),
        ("router_priority_matrix", "[1]", "urgency"),
        ("router_priority_matrix", '{"1": "P1"}', "urgency"),
        ("router_load_counted_statuses", "new,bogus", "'bogus'"),
        ("log_level", "verbose", "DEBUG"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(field: str, value: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RouterSettings(**{field: value})  # type: ignore[arg-type]
    error = caught.value.errors()[0]
    assert error["loc"] == (field,) and says in error["msg"]


def test_good_values_are_read() -> None:
    settings = RouterSettings(
        router_priority_matrix='{"1": {"1": "P1"}}', router_load_counted_statuses="new, open ,pending"
    )
    assert settings.router_load_counted_statuses == "new, open ,pending"
    assert CommonSettings(log_level="warning").log_level == "WARNING"
