"""``ticketctl classifier``: train, evaluate, list and activate models; export feedback."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import orjson
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.classification import EvaluationReport, TicketClassifier, evaluate, load_labelled_file
from services.router.classifiers import service
from services.router.classifiers.schemas import LabelKind
from services.router.models import ClassifierModel
from services.ticketctl.database import ROW_ID_MAX, run_in_transaction
from services.ticketctl.output import console, fail, not_utf8

classifier_app = typer.Typer(
    help="Classifier models: train, evaluate, list, activate, deactivate; feedback export.",
    no_args_is_help=True,
)
feedback_app = typer.Typer(help="Corrections captured when the source system reassigns a ticket.")
classifier_app.add_typer(feedback_app, name="feedback")
T = TypeVar("T")
ACTOR = "ticketctl"
MAX_NAME = 200  # classifier_models.name is String(200): PostgreSQL refuses longer ones on insert


def _db(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One committed transaction on DATABASE_URL."""

    return run_in_transaction(work)


def _load(file: Path, text_column: str, label: str) -> tuple[list[str], list[str]]:
    try:
        texts, labels = load_labelled_file(file, text_column=text_column, label_column=label)
    except UnicodeDecodeError as exc:  # a ValueError whose text does not name the file
        raise fail(not_utf8(file, exc, whole_file=False)) from exc
    except ValueError as exc:  # the loader's own messages name the file and line
        raise fail(str(exc)) from exc
    except (EOFError, zlib.error) as exc:
        # A truncated or damaged .gz; EOFError must not escape: click reports it as just "Aborted."
        raise fail(f"{file}: damaged or truncated gzip data ({exc})") from exc
    except OSError as exc:  # missing, unreadable, or not gzip at all (BadGzipFile)
        raise fail(f"cannot read {file}: {exc.strerror or exc}") from exc
    if not texts:
        raise fail(f"{file}: no labelled rows in column {label!r}")
    return texts, labels


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@classifier_app.command("train")
def train_command(
    file: Path = typer.Argument(..., help="Labelled history: .csv, .jsonl or .ndjson, optionally .gz."),
    label: str = typer.Option(..., "--label", help="Column holding the label."),
    text_column: str = typer.Option("text", help="Column holding the ticket text."),
    label_kind: LabelKind = typer.Option(
        LabelKind.CATEGORY, help="What the label is: category, team or priority."
    ),
    target_precision: float = typer.Option(
        0.95, min=0.01, max=1.0, help="Precision the confidence threshold must reach (cross-validated)."
    ),
    holdout: float = typer.Option(
        0.2, min=0.0, max=0.9, help="Share kept out of training for per-class figures (0: none)."
    ),
    name: str | None = typer.Option(None, help="Model name (default: <label kind>-<file name>)."),
    activate: bool = typer.Option(False, "--activate", help="Make it the active model of its kind."),
    include_feedback: bool = typer.Option(
        False, "--include-feedback", help="Add the reassignment corrections (team models only)."
    ),
) -> None:
    """Train a model, store it as a new version in the database and print its figures."""
    if include_feedback and label_kind != LabelKind.TEAM:
        raise typer.BadParameter(
            "feedback examples are team labels: use --label-kind team", param_hint="--include-feedback"
        )
    if name is not None and len(name) > MAX_NAME:  # refused before the training, not after it
        raise typer.BadParameter(f"at most {MAX_NAME} characters", param_hint="--name")
    texts, labels = _load(file, text_column, label)
    rows = len(texts)
    feedback = 0
    if include_feedback:
        examples = _db(service.feedback_examples)
        texts += [e.text for e in examples]
        labels += [e.label for e in examples]
        feedback = len(examples)
    texts, labels, rare = service.drop_rare(texts, labels)
    if rare:
        listed = ", ".join(f"{k} ({n})" for k, n in sorted(rare.items()))
        console.print(f"left out, too few examples to learn from: {listed}", style="yellow")
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("loading", total=1.0)
        try:
            model, figures = service.train_with_figures(
                texts,
                labels,
                target_precision=target_precision,
                holdout=holdout,
                progress=lambda stage, fraction: bar.update(task, description=stage, completed=fraction),
            )
        except ValueError as exc:
            raise fail(str(exc)) from exc
    trained_on = {
        "file": file.name,
        "rows": rows,
        "feedback_rows": feedback,
        "label_column": label,
        "text_column": text_column,
        "left_out": rare,
        "holdout": holdout,
    }

    async def store(session: AsyncSession) -> ClassifierModel:
        row = await service.store_model(
            session,
            model,
            name=name or f"{label_kind.value}-{file.name}"[:MAX_NAME],
            label_kind=label_kind,
            figures=figures,
            trained_on=trained_on,
        )
        return row

    row = _db(store)
    _print_figures(row.id, figures)
    if figures.get("duplicates_dropped"):
        console.print(f"{figures['duplicates_dropped']} repeated (text, label) rows counted once")
    console.print(f"stored model version {row.id} ({label_kind.value})")
    if activate:  # after storing: a model that cannot be activated here is kept, not lost
        _activate(row.id)


def _print_figures(version: int, figures: dict[str, object]) -> None:
    cv = figures["cross_validated"]
    assert isinstance(cv, dict)
    table = Table("figure", "value", title=f"model {version}")
    table.add_row("threshold", f"{figures['threshold']:.3f}")
    table.add_row("cross-validated accuracy", _pct(cv["accuracy"]))
    table.add_row("cross-validated macro-F1", _pct(cv["macro_f1"]))
    table.add_row("coverage at threshold", _pct(cv["coverage"]))
    table.add_row("precision at threshold", _pct(cv["precision_at_threshold"]))
    holdout = figures.get("holdout")
    if isinstance(holdout, dict):
        table.add_row(f"holdout accuracy (n={holdout['n']})", _pct(holdout["accuracy"]))
        table.add_row("holdout precision at threshold", _pct(holdout["precision_at_threshold"]))
    console.print(table)


@classifier_app.command("evaluate")
def evaluate_command(
    file: Path = typer.Argument(..., help="Labelled tickets the model has not seen."),
    label: str = typer.Option(..., "--label", help="Column holding the label."),
    text_column: str = typer.Option("text", help="Column holding the ticket text."),
    model: int | None = typer.Option(
        None, "--model", min=1, max=ROW_ID_MAX, help="Model version (default: the active one)."
    ),
    label_kind: LabelKind = typer.Option(LabelKind.CATEGORY, help="Kind of the active model to use."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Accuracy, macro-F1, per-class precision/recall, threshold, coverage and precision at it."""
    texts, labels = _load(file, text_column, label)

    async def fetch(session: AsyncSession) -> ClassifierModel | None:
        if model is not None:
            return await service.get_model(session, model, with_blob=True)
        return await service.active_model(session, label_kind)

    row = _db(fetch)
    if row is None:
        raise fail(
            f"no model version {model}" if model is not None else f"no active {label_kind.value} model"
        )
    try:
        report = evaluate(TicketClassifier.from_bytes(row.blob), texts, labels)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        out = {
            "version": row.id,
            "name": row.name,
            "label_kind": row.label_kind,
            "file": file.name,
            **report.model_dump(mode="json"),
        }
        typer.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    _print_report(row, report)


def _print_report(row: ClassifierModel, report: EvaluationReport) -> None:
    head = Table("figure", "value", title=f"model {row.id} ({row.name}) on {report.n} tickets")
    head.add_row("accuracy", _pct(report.accuracy))
    head.add_row("macro-F1", _pct(report.macro_f1))
    head.add_row("threshold", f"{report.threshold:.3f}")
    head.add_row("coverage at threshold", _pct(report.coverage))
    head.add_row("precision at threshold", _pct(report.precision_at_threshold))
    console.print(head)
    classes = Table("class", "precision", "recall", "F1", "support")
    for name, fig in report.per_class.items():
        classes.add_row(name, _pct(fig.precision), _pct(fig.recall), _pct(fig.f1), str(fig.support))
    console.print(classes)


@classifier_app.command("list")
def list_command(
    label_kind: LabelKind | None = typer.Option(None, help="Only models of this kind."),
) -> None:
    """Stored model versions, newest first."""
    rows = _db(lambda session: service.list_models(session, label_kind))
    table = Table("version", "name", "kind", "active", "created", "rows", "threshold", "cv accuracy")
    for row in rows:
        cv = row.figures.get("cross_validated") or {}
        table.add_row(
            str(row.id),
            row.name,
            row.label_kind,
            "yes" if row.active else "",
            row.created_at.isoformat(timespec="seconds"),
            str(row.trained_on.get("rows", "")),
            f"{row.figures.get('threshold', 0):.3f}",
            _pct(cv.get("accuracy")),
        )
    console.print(table)


@classifier_app.command("activate")
def activate_command(
    version: int = typer.Argument(..., min=1, max=ROW_ID_MAX, help="Model version."),
) -> None:
    """Make a model the active one of its kind; routers switch within ROUTER_CLASSIFIER_POLL_S."""
    _activate(version)


def _activate(version: int) -> None:
    async def work(session: AsyncSession) -> ClassifierModel | None:
        await service.ensure_loads(session, version)
        return await service.activate(session, version, ACTOR)

    try:
        row = _db(work)
    except service.ModelUnfit as exc:
        raise fail(f"not activated: {exc}") from exc
    if row is None:
        raise fail(f"no model version {version}")
    console.print(f"model {version} is the active {row.label_kind} model")


@classifier_app.command("deactivate")
def deactivate_command(label_kind: LabelKind = typer.Option(..., help="category, team or priority.")) -> None:
    """Stop using any model of a kind."""
    version = _db(lambda session: service.deactivate(session, label_kind, ACTOR))
    console.print(f"no active {label_kind.value} model" + (f" (was {version})" if version else " (none was)"))


@feedback_app.command("export")
def feedback_export(
    file: Path = typer.Argument(..., help="Output JSON Lines file (.jsonl, or .jsonl.gz)."),
) -> None:
    """Write the corrections as JSONL: ticket_key, text, team, previous_team, created_at."""
    examples = _db(service.feedback_examples)
    # mtime=0: the header's 32-bit time field cannot hold the wall clock from 2106 on.
    with gzip.GzipFile(file, "wb", mtime=0) if file.suffix == ".gz" else file.open("wb") as handle:
        for e in examples:
            record = {
                "ticket_key": e.ticket_key,
                "text": e.text,
                "team": e.label,
                "previous_team": e.previous_label,
                "created_at": e.created_at.isoformat(),
            }
            handle.write(orjson.dumps(record) + b"\n")
    console.print(f"wrote {len(examples)} examples to {file} (train with --label team --label-kind team)")
