"""Loading labelled ticket history from CSV or JSON Lines files (optionally gzip-compressed)."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import IO

import orjson

# A pasted log in one ticket can be far beyond the csv module's default field limit (128 KiB).
_MAX_FIELD = 64 * 1024 * 1024


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig: a byte order mark, as spreadsheet exports write, is not part of the first column.
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def _delimiter(header_line: str) -> str:
    """The header's separator: a comma, or the semicolon or tab of a regional spreadsheet export."""
    return max(",;\t", key=header_line.count) if header_line.count(",") == 0 else ","


def load_labelled_file(
    path: str | Path, text_column: str = "text", label_column: str = "category"
) -> tuple[list[str], list[str]]:
    """Return (texts, labels). The format comes from the suffix: ``.csv``/``.jsonl`` (+ ``.gz``).

    The label may be a category, a team or a priority: it is read as a string. Rows with an
    empty label are skipped (unlabelled history); a missing column or a malformed line raises
    ``ValueError`` naming it.
    """
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind == ".csv":
        return _load_csv(path, text_column, label_column)
    if kind in (".jsonl", ".ndjson"):
        return _load_jsonl(path, text_column, label_column)
    raise ValueError(f"{path}: unsupported file type; use .csv, .jsonl or .ndjson, optionally .gz")


def _load_csv(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    csv.field_size_limit(max(csv.field_size_limit(), _MAX_FIELD))
    with _open_text(path) as fh:
        delimiter = _delimiter(fh.readline())
        fh.seek(0)
        reader = csv.DictReader(fh, delimiter=delimiter)
        try:
            header = reader.fieldnames or []
            for column in (text_column, label_column):
                if column not in header:
                    raise ValueError(f"{path}: missing column {column!r}; columns are {header}")
            for row in reader:
                text, label = row.get(text_column), row.get(label_column)
                if text is None or label is None:
                    raise ValueError(f"{path}: line {reader.line_num}: too few fields")
                if label.strip():
                    texts.append(text)
                    labels.append(label.strip())
        except csv.Error as exc:  # a field past the limit, a stray NUL...
            raise ValueError(f"{path}: line {reader.line_num}: {exc}") from exc
    return texts, labels


def _load_jsonl(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    with _open_text(path) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number}: invalid JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {number}: expected a JSON object")
            for column in (text_column, label_column):
                if column not in record:
                    raise ValueError(f"{path}: line {number}: missing column {column!r}")
            text, label = record[text_column], record[label_column]
            if label is None or str(label).strip() == "":
                continue
            texts.append("" if text is None else str(text))
            labels.append(str(label).strip())
    return texts, labels
