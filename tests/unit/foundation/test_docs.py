"""The README documents every setting, generated from the settings classes."""

from pathlib import Path

from shared.settings_doc import markdown_table

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_configuration_table_is_current():
    text = README.read_text()
    start = text.index("<!-- settings:start -->") + len("<!-- settings:start -->")
    end = text.index("<!-- settings:end -->")
    assert text[start:end].strip() == markdown_table().strip(), (
        "README configuration table is stale: run `make docs`"
    )
