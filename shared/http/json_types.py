"""Numbers and booleans in request bodies as JSON has them.

Pydantic's lax mode took ``true`` for the integer 1 (a team's capacity, a Zendesk group id, an SLA
target of one second) and ``"yes"``, ``"1"`` or ``0`` for a boolean. A JSON boolean is never a
number, and a boolean is ``true`` or ``false``: anything else is refused, naming the field. A
number given as a numeric string (``"5"``) is still read as that number, as it always was.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Strict
from pydantic_core import PydanticCustomError


def refuse_bool(value: Any) -> Any:
    """``value``, unless it is a boolean where a number belongs."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_not_boolean", "Input should be a number, not a boolean")
    return value


JsonInt = Annotated[int, BeforeValidator(refuse_bool)]
JsonFloat = Annotated[float, BeforeValidator(refuse_bool)]
JsonBool = Annotated[bool, Strict()]  # true or false: no "yes", "1" or 0
