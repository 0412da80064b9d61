"""``ticketctl dev run``'s banner: what it tells the developer to run and read."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ticketctl import dev


def test_the_banner_names_the_var_dir_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # VAR_DIR moves the credentials and logs (README, Configuration); the banner's `source ...`
    # line and log directory said var/ whatever it was.
    monkeypatch.setattr(dev.console, "width", 250)
    var = tmp_path / "elsewhere"
    urls = {"intake": "http://127.0.0.1:1", "router": "http://127.0.0.1:2", "metrics": "http://127.0.0.1:3"}
    keys = {"INTAKE_API_KEY": "i", "ADMIN_API_KEY": "a"}
    dev._print_banner(keys, True, var / "dev-credentials.env", urls)
    out = capsys.readouterr().out
    assert f"source {var / 'dev-credentials.env'} && curl" in out, out
    assert f"logs     {var / 'logs'}/" in out, out
    assert "var/" not in out.replace(str(var), ""), out
