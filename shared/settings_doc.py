"""Renders the README's configuration table from the settings classes (one source of truth).

``python -m shared.settings_doc`` prints the table; a test checks the README carries every row.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_settings import BaseSettings

from shared.settings import (
    CommonSettings,
    ConsumerSettings,
    DevSettings,
    IntakeSettings,
    MetricsSettings,
    RouterSettings,
)

SECTIONS: list[tuple[str, type[BaseSettings]]] = [
    ("all services", CommonSettings),
    ("router and metrics (consumer loop)", ConsumerSettings),
    ("intake", IntakeSettings),
    ("router", RouterSettings),
    ("metrics", MetricsSettings),
    ("make run", DevSettings),
]


def rows() -> list[tuple[str, str, str, str]]:
    seen: set[str] = set()
    out = []
    for section, cls in SECTIONS:
        for name, field in cls.model_fields.items():
            if name in seen:
                continue
            seen.add(name)
            default = field.default if field.default is not None else ""
            out.append(
                (name.upper(), f"`{default}`" if default != "" else "", field.description or "", section)
            )
    return out


def markdown_table() -> str:
    lines = ["| variable | default | meaning | used by |", "| --- | --- | --- | --- |"]
    lines += [
        f"| `{name}` | {default} | {meaning} | {section} |" for name, default, meaning, section in rows()
    ]
    return "\n".join(lines)


START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def write_into(path: Path) -> None:
    """Replace the table between the markers in ``path`` (the README)."""
    text = path.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{markdown_table()}\n{END}{tail}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        write_into(Path(sys.argv[2]))
    else:
        print(markdown_table())
