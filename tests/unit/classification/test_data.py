from __future__ import annotations

import gzip

import pytest

from services.router.classification import load_labelled_file


def test_csv_and_gzip(tmp_path):
    content = 'text,team,other\nprinter jammed,Hardware,x\n"vpn, broken",Network,y\nno label,,z\n'
    plain = tmp_path / "t.csv"
    plain.write_text(content)
    packed = tmp_path / "t.csv.gz"
    packed.write_bytes(gzip.compress(content.encode(), mtime=0))
    for path in (plain, packed):
        assert load_labelled_file(path, label_column="team") == (
            ["printer jammed", "vpn, broken"],
            ["Hardware", "Network"],
        )


def test_jsonl_with_numeric_priority(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    lines = b'{"body": "server down", "priority": 1}\n\n{"body": "typo", "priority": "P4"}\n'
    path.write_bytes(gzip.compress(lines, mtime=0))
    assert load_labelled_file(path, text_column="body", label_column="priority") == (
        ["server down", "typo"],
        ["1", "P4"],
    )


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\nhello,a\n")
    with pytest.raises(ValueError, match="missing column 'category'"):
        load_labelled_file(path)
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": "a", "category": "x"}\n{"text": "b"}\n')
    with pytest.raises(ValueError, match="line 2: missing column 'category'"):
        load_labelled_file(jsonl)


def test_bad_lines(tmp_path):
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": "a", "category": "x"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2: invalid JSON"):
        load_labelled_file(jsonl)
    jsonl.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="line 1: expected a JSON object"):
        load_labelled_file(jsonl)
    short = tmp_path / "s.csv"
    short.write_text("text,category\nonly text\n")
    with pytest.raises(ValueError, match="line 2: too few fields"):
        load_labelled_file(short)
    with pytest.raises(ValueError, match="unsupported file type"):
        load_labelled_file(tmp_path / "t.xlsx")


def test_spreadsheet_exports_load_bom_semicolons_and_long_fields(tmp_path):
    # Excel's "CSV UTF-8" starts with a byte order mark, regional ones separate with semicolons,
    # and a pasted log can be beyond the csv module's 128 KiB field limit.
    path = tmp_path / "export.csv"
    path.write_text('\ufefftext;team\n"vpn; broken";Network\n', encoding="utf-8")
    assert load_labelled_file(path, label_column="team") == (["vpn; broken"], ["Network"])
    long_log = "x" * 200_000
    path.write_text(f'text,team\n"{long_log}",Network\n', encoding="utf-8")
    assert load_labelled_file(path, label_column="team")[0] == [long_log]
    jsonl = tmp_path / "export.jsonl"
    jsonl.write_text('\ufeff{"text": "printer", "team": "Hardware"}\n', encoding="utf-8")
    assert load_labelled_file(jsonl, label_column="team") == (["printer"], ["Hardware"])
