"""``ticketctl dev run``'s banner: what it tells the developer to run and read."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from services.ticketctl import dev
from services.ticketctl import main as ticketctl
from shared.kafka.embedded import free_port


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


def test_a_service_that_exits_at_start_is_named_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # Its port taken by another program, say: the service exits while dev run waits for it to be
    # ready. That was a RuntimeError traceback; the log that says why was not named.
    real_popen = subprocess.Popen

    def exits_at_once(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return real_popen([sys.executable, "-c", "raise SystemExit(3)"], **kwargs)

    monkeypatch.setattr(dev.subprocess, "Popen", exits_at_once)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}")
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    for port in ("INTAKE_PORT", "ROUTER_PORT", "METRICS_PORT"):  # nothing else answers there
        monkeypatch.setenv(port, str(free_port()))
    monkeypatch.setattr("sys.argv", ["ticketctl", "dev", "run", "--no-embedded-broker"])
    with pytest.raises(SystemExit) as exited:
        ticketctl.main()
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert exited.value.code == 1, printed
    assert "Traceback" not in printed and "RuntimeError" not in printed, printed
    assert f"intake exited with code 3; see {tmp_path / 'var' / 'logs' / 'intake'}.log" in printed, printed


def test_ctrl_c_while_a_service_starts_stops_all_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # "Ctrl-C stops everything" (README): while dev run waited for a service to be ready, Ctrl-C
    # was only noted, and the wait went on for up to a minute per service.
    real_popen = subprocess.Popen
    ctrl_c = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))

    def never_ready(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        if ctrl_c.ident is None:  # the first service starts: dev run's handler is in place
            ctrl_c.start()
        return real_popen([sys.executable, "-c", "import time; time.sleep(120)"], **kwargs)

    monkeypatch.setattr(dev.subprocess, "Popen", never_ready)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}")
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    for port in ("INTAKE_PORT", "ROUTER_PORT", "METRICS_PORT"):
        monkeypatch.setenv(port, str(free_port()))
    monkeypatch.setattr("sys.argv", ["ticketctl", "dev", "run", "--no-embedded-broker"])
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        with pytest.raises(SystemExit) as exited:
            ticketctl.main()
    finally:
        ctrl_c.cancel()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    printed = capsys.readouterr().out
    assert exited.value.code == 0, printed
    assert time.monotonic() - started < 20, printed
    assert printed.rstrip().endswith("stopped."), printed


def test_a_broker_port_in_use_is_said_and_nothing_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # A broker left running (or a Kafka in a container) on KAFKA_BOOTSTRAP_SERVERS' port: tansu
    # could not listen and exited, yet dev run said "tansu (in memory) on ..." and pointed every
    # service at the other broker.
    started: list[object] = []
    monkeypatch.setattr(dev.subprocess, "Popen", lambda *args, **kwargs: started.append(args))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}")
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
        monkeypatch.setattr("sys.argv", ["ticketctl", "dev", "run"])
        with pytest.raises(SystemExit) as exited:
            ticketctl.main()
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert exited.value.code == 1, printed
    assert "Traceback" not in printed and "tansu (in memory)" not in printed, printed
    assert f"127.0.0.1:{port} is in use" in printed, printed
    assert not started  # neither the broker nor a service
