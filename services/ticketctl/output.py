"""Where the CLI writes. Plain text, never Rich markup: names, messages and diffs come from users
and the database, and one holding brackets (``[/oops]``, ``[cf887f73, 63d4e452]``) would be
swallowed as a tag or stop the command. Styles go in ``style=``.

Also how a command reads the file it is given: a file that cannot be read, is not UTF-8 or is not
YAML is one line on stderr naming the file, and exit status 1, not a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from services.router.rules.serialization import load_core_yaml
from shared.db.storable import unstorable

console = Console(markup=False)
errors = Console(stderr=True, markup=False)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as one line on stderr; the caller raises the returned exit (status 1)."""
    # soft_wrap: a long path stays on one line instead of being wrapped at the terminal width.
    errors.print(message, style="red", soft_wrap=True)
    return typer.Exit(1)


def read_text(path: Path, label: str = "") -> str:
    """The UTF-8 text of ``path``. ``label`` (an option name such as ``--schedule``) prefixes the
    message when the file cannot be read."""
    prefix = f"{label}: " if label else ""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"{prefix}cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:  # a binary file, or text saved as Latin-1 / UTF-16
        raise fail(prefix + not_utf8(path, exc)) from exc


def not_utf8(path: Path, exc: UnicodeDecodeError, whole_file: bool = True) -> str:
    """Which file and what: the exception's own text names neither the file nor a fix. Its offset
    is the file's only when the whole file was decoded at once (not so for a stream read in chunks)."""
    where = f"byte {exc.start} is" if whole_file else "it holds"
    return f"{path} is not UTF-8 text ({where} 0x{exc.object[exc.start]:02x}); save it as UTF-8"


def load_yaml(path: Path, label: str = "") -> Any:
    """The YAML (or JSON) document in ``path``; errors as :func:`read_text`, plus YAML's own
    problem and where it is (line and column count from 1, as editors do)."""
    text = read_text(path, label)
    try:
        document = load_core_yaml(text)  # "10:30" stays a string, a repeated key is an error
    except yaml.YAMLError as exc:
        prefix = f"{label}: " if label else ""
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise fail(f"{prefix}{path} is not valid YAML{where}: {problem}") from exc
    refuse_unstorable(path, document, label)
    return document


def refuse_unstorable(path: Path, document: Any, label: str = "") -> None:
    """Fail naming the file and the JSON pointer when ``document`` holds what no database column
    keeps: YAML's "\\0" (JSON's "\\u0000"), refused as the API refuses it. SQLite stored it where
    PostgreSQL failed the INSERT with a driver error naming no field."""
    found = unstorable(document)
    if found is not None:
        prefix = f"{label}: " if label else ""
        raise fail(f"{prefix}{path}: {found[0]}: {found[1]}")
