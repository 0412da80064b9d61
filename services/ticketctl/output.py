"""Where the CLI writes. Plain text, never Rich markup: names, messages and diffs come from users
and the database, and one holding brackets (``[/oops]``, ``[cf887f73, 63d4e452]``) would be
swallowed as a tag or stop the command. Styles go in ``style=``."""

from __future__ import annotations

from rich.console import Console

console = Console(markup=False)
errors = Console(stderr=True, markup=False)
