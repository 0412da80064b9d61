"""``ticketctl classifier``: train into the database, evaluate as JSON, feedback in and out."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import time
import uuid

import orjson
from sqlalchemy import select
from typer.testing import CliRunner

from services.router.classifiers.schemas import LabelKind
from services.router.models import ClassifierFeedback, ClassifierModel, Team
from services.ticketctl.main import app
from tests.unit.classifiers.helpers import SURE_NETWORK, synthetic


async def ticketctl(*args: str):
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def write_csv(path, texts, labels, label_column="team"):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", label_column])
        writer.writerows(zip(texts, labels, strict=True))


async def test_train_evaluate_and_feedback(tmp_path, sessions, cli_env):
    texts, labels = synthetic(n=60, seed=3)
    train_file, test_file = tmp_path / "history.csv", tmp_path / "fresh.jsonl.gz"
    write_csv(train_file, texts[:150], labels[:150])
    fresh = "".join(
        json.dumps({"text": text, "team": label}) + "\n"
        for text, label in zip(texts[150:], labels[150:], strict=True)
    )
    test_file.write_bytes(gzip.compress(fresh.encode(), mtime=0))  # the wall clock overflows it from 2106
    async with sessions() as session, session.begin():
        session.add(ClassifierFeedback(ticket_key="api:fb-1", text=SURE_NETWORK, label="network"))
        session.add(
            ClassifierFeedback(ticket_key="api:fb-1", text=SURE_NETWORK, label="netops", previous_label="x")
        )
        session.add(ClassifierFeedback(ticket_key="api:fb-2", text="dns " + SURE_NETWORK, label="netops"))
        session.add(ClassifierFeedback(ticket_key="api:fb-3", text="once", label="only-once"))
        if await session.get(Team, "netops") is None:  # a team model is activated only for teams
            session.add(Team(name="netops"))

    trained = await ticketctl(
        "classifier", "train", str(train_file), "--label", "team", "--label-kind", "team",
        "--target-precision", "0.9", "--name", "cli-team", "--activate", "--include-feedback",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    async with sessions() as session:
        row = await session.scalar(select(ClassifierModel).where(ClassifierModel.name == "cli-team"))
    assert row is not None and row.active and row.label_kind == "team"
    assert row.trained_on["rows"] == 150 and row.trained_on["feedback_rows"] >= 1
    # The latest correction of a ticket is the one used; a label seen once cannot be learned.
    assert "netops" in row.figures["labels"] and "only-once" not in row.figures["labels"]
    assert row.trained_on["left_out"].get("only-once") == 1 and "only-once (1)" in trained.output
    for key in ("accuracy", "macro_f1", "coverage", "precision_at_threshold"):
        assert key in row.figures["cross_validated"]
    assert f"stored model version {row.id}" in trained.output

    evaluated = await ticketctl(
        "classifier", "evaluate", str(test_file), "--label", "team", "--label-kind", "team", "--json"
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["version"] == row.id and report["n"] == 30
    for key in ("accuracy", "macro_f1", "threshold", "coverage", "precision_at_threshold", "per_class"):
        assert key in report
    assert report["threshold"] == row.figures["threshold"]
    assert {"precision", "recall"} <= set(report["per_class"]["network"])

    table = await ticketctl(
        "classifier", "evaluate", str(test_file), "--label", "team", "--model", str(row.id)
    )
    assert table.exit_code == 0 and "precision at threshold" in table.output

    exported = tmp_path / "feedback.jsonl"
    out = await ticketctl("classifier", "feedback", "export", str(exported))
    assert out.exit_code == 0, out.output
    records = [orjson.loads(line) for line in exported.read_bytes().splitlines()]
    mine = [r for r in records if r["ticket_key"] == "api:fb-1"]
    assert [(r["team"], r["previous_team"]) for r in mine] == [("netops", "x")]


async def test_bad_input_ends_with_a_message(tmp_path, cli_env):
    texts, labels = synthetic(n=5)
    data = tmp_path / "history.csv"
    write_csv(data, texts, labels)
    missing = await ticketctl("classifier", "train", str(data), "--label", "category")
    assert missing.exit_code == 1 and "missing column 'category'" in missing.output
    feedback = await ticketctl("classifier", "train", str(data), "--label", "team", "--include-feedback")
    assert feedback.exit_code == 2 and "--label-kind team" in feedback.output
    no_model = await ticketctl("classifier", "evaluate", str(data), "--label", "team", "--model", "999999")
    assert no_model.exit_code == 1 and "no model version 999999" in no_model.output
    none_active = await ticketctl(
        "classifier", "evaluate", str(data), "--label", "team", "--label-kind", "priority"
    )
    assert none_active.exit_code == 1 and f"no active {LabelKind.PRIORITY.value} model" in none_active.output


async def test_a_name_longer_than_the_column_is_refused_before_training(tmp_path, sessions, cli_env):
    """PostgreSQL refused it on insert, after the training, with a traceback; SQLite stored it."""
    texts, labels = synthetic(n=10, seed=4)
    data = tmp_path / "history.csv"
    write_csv(data, texts, labels)
    refused = await ticketctl("classifier", "train", str(data), "--label", "team", "--name", "n" * 201)
    assert refused.exit_code == 2 and "--name" in refused.output
    assert "stored model version" not in refused.output
    # A default name from a long file name is cut to fit.
    long_file = tmp_path / ("h" * 220 + ".csv")
    write_csv(long_file, texts, labels)
    trained = await ticketctl("classifier", "train", str(long_file), "--label", "team", "--holdout", "0")
    assert trained.exit_code == 0, trained.output
    async with sessions() as session:
        row = await session.scalar(select(ClassifierModel).order_by(ClassifierModel.id.desc()).limit(1))
    assert row is not None and row.name == ("category-" + "h" * 220)[:200]


async def test_a_model_that_does_not_load_is_not_activated(sessions, cli_env):
    async with sessions() as session, session.begin():
        row = ClassifierModel(name="broken", label_kind="category", blob=b"junk", figures={}, trained_on={})
        session.add(row)
    refused = await ticketctl("classifier", "activate", str(row.id))
    assert refused.exit_code == 1 and "does not load" in refused.output
    async with sessions() as session:
        stored = await session.get(ClassifierModel, row.id)
        assert stored is not None and not stored.active


async def test_feedback_exports_to_gzip_after_2106(tmp_path, sessions, cli_env, monkeypatch):
    """A gzip header holds its mtime in 32 bits, and gzip stamps the wall clock by default: from
    2106-02-07 every .gz export failed (struct.error)."""
    key = f"api:gz-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        session.add(ClassifierFeedback(ticket_key=key, text=SURE_NETWORK, label="netops", previous_label="x"))
    exported = tmp_path / "feedback.jsonl.gz"
    with monkeypatch.context() as later:
        later.setattr(time, "time", lambda: float(2**32))  # 2106-02-07 06:28:16 UTC, as gzip reads it
        out = await ticketctl("classifier", "feedback", "export", str(exported))
    assert out.exit_code == 0, out.output
    records = [orjson.loads(line) for line in gzip.decompress(exported.read_bytes()).splitlines()]
    assert [(r["team"], r["previous_team"]) for r in records if r["ticket_key"] == key] == [("netops", "x")]
