"""``python -m bench`` (``make bench``): run every benchmark, print a table, write the results.

    .venv/bin/python -m bench [--only intake,router,batches,e2e,rules,classifier,metrics] [--quick]

The service benchmarks (intake, router, e2e) start the broker, a database and the services as
separate processes on loopback; the script benchmarks (rules, classifier, metrics) run as
subprocesses and their ``--json`` output is collected. Results go to bench/results/latest.json.
Every number is measured in this run; targets are shown next to them, never substituted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness.procs import REPO_ROOT
from bench.harness.reference import reference_ms
from bench.harness.run import Row

RESULTS = REPO_ROOT / "bench" / "results"
CLASSIFIER_DATA = REPO_ROOT.parent / "shared" / "datasets" / "it_tickets.csv.gz"
ALL = ["intake", "router", "batches", "e2e", "rules", "classifier", "metrics"]

Measure = Callable[[Path, bool], tuple[dict[str, Any], list[Row]]]


def _script(name: str, args: list[str], workdir: Path, timeout_s: float) -> dict[str, Any]:
    out = workdir / f"{name}.json"
    argv = [sys.executable, str(REPO_ROOT / "bench" / f"bench_{name}.py"), *args, "--json", str(out)]
    subprocess.run(argv, cwd=REPO_ROOT, check=True, timeout=timeout_s)
    return dict(json.loads(out.read_text()))


def rules(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    args = ["--tickets", "1000", "--seconds", "1"] if quick else []
    result = _script("rules", args, workdir, 300)
    return result, [
        Row("rules", "evaluations, 200 rules", result["evaluations_per_cpu_second_median"], "/cpu-s"),
        Row("rules", "facts + evaluation", result["facts_plus_evaluations_per_cpu_second"], "/cpu-s"),
    ]


def classifier(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    if not CLASSIFIER_DATA.is_file():
        print(f"classifier: skipped, dataset not found at {CLASSIFIER_DATA}")
        return {"skipped": f"dataset not found: {CLASSIFIER_DATA}"}, []
    args = ["--data", str(CLASSIFIER_DATA)]
    if quick:
        args += ["--folds", "2", "--inner-folds", "2", "--latency-samples", "300"]
    result = _script("classifier", args, workdir, 900)
    mean, latency = result["mean"], result["predict_latency_us"]
    met = result["checks"]  # bench_classifier.py holds the acceptance tests; the rows show them
    table: list[tuple[str, float, str, str, str | None]] = [  # metric, value, unit, target, check
        ("accuracy (CV mean)", round(mean["accuracy"], 4), "", ">= 0.87", "accuracy >= 0.87"),
        ("macro-F1 (CV mean)", round(mean["macro_f1"], 4), "", "", None),
        (
            "precision at threshold",
            round(mean["precision_at_threshold"], 4),
            "",
            f">= {result['target_precision']}",
            "held-out precision >= target",
        ),
        ("coverage at threshold", round(mean["coverage"], 4), "", ">= 0.75", "coverage >= 0.75"),
        (
            "predict, single (mean)",
            round(latency["mean"], 1),
            "µs",
            "<= 200",
            "predict <= 200 µs per ticket (single and batched)",
        ),
        ("predict, batched per ticket", round(latency["batched_per_ticket"], 1), "µs", "", None),
        ("predict, single p99 (long tickets)", round(latency["p99"], 1), "µs", "", None),
        (
            "training, full file",
            round(result["full_train_seconds"], 1),
            "s",
            "< 60",
            "full-file training < 60 s",
        ),
    ]
    return result, [
        Row("classifier", metric, value, unit, target, None if check is None else met[check])
        for metric, value, unit, target, check in table
    ]


def batches(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    result = _script("batches", ["--batches", "40" if quick else "200"], workdir, 900)
    label = result["database"]
    rows = [
        Row("batches", f"router CPU per batch of {size} ({label})", figures["cpu_ms_per_batch"], "ms")
        for size, figures in result["by_size"].items()
    ]
    fixed, marginal = result["fixed_cpu_ms_per_batch"], result["marginal_cpu_us_per_ticket"]
    rows += [
        Row("batches", f"router CPU per batch before its tickets ({label})", fixed, "ms"),
        Row("batches", f"router CPU per ticket in small batches ({label})", marginal, "µs"),
    ]
    return result, rows


def metrics(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    sizes = "10000,100000" if quick else "10000,100000,1000000"
    result = _script("metrics", ["--sizes", sizes], workdir, 900)
    rows = []
    for size, figures in result.items():
        n = f"{int(size):,}"
        rows += [
            # From n open tickets (the mixed stream adds more as it goes: open_tickets_after_mix).
            Row(
                "metrics",
                f"ingest from {n} open, apply",
                figures["ingest_events_per_cpu_second"],
                "events/cpu-s",
            ),
            Row(
                "metrics",
                f"ingest from {n} open, decode + apply",
                figures["decode_and_ingest_events_per_cpu_second"],
                "events/cpu-s",
            ),
            Row("metrics", f"scrape, {n} open", figures["scrape_ms_median"], "ms"),
            Row("metrics", f"scrape, {n} open, 6 partitions", figures["scrape_6_partitions_ms_median"], "ms"),
            Row("metrics", f"memory, {n} open", figures["rss_delta_bytes_per_open_ticket"], "B/ticket"),
            # Ingest and scrapes wait while the state is locked; the rest runs beside them.
            Row("metrics", f"checkpoint, {n} open", figures["checkpoint_dump_seconds"], "s"),
            Row(
                "metrics", f"checkpoint, {n} open, state locked", figures["checkpoint_lock_held_seconds"], "s"
            ),
        ]
    return result, rows


def _service(name: str) -> Measure:
    def run(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
        module = __import__(f"bench.bench_{name}", fromlist=["measure"])
        measure: Measure = module.measure
        return measure(workdir, quick)

    return run


BENCHES: dict[str, Measure] = {
    "intake": _service("intake"),
    "router": _service("router"),
    "batches": batches,
    "e2e": _service("e2e"),
    "rules": rules,
    "classifier": classifier,
    "metrics": metrics,
}


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(rows: list[Row]) -> None:
    header = ("bench", "metric", "measured", "unit", "target", "met")
    cells = [
        (
            r.bench,
            r.metric,
            _cell(r.value),
            r.unit,
            r.target,
            "" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print("\n" + line + "\n" + "-" * len(line))
    for c in cells:
        print(
            "  ".join(
                v.rjust(w) if i == 2 else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths, strict=True))
            )
        )


def with_earlier(report: dict[str, Any], path: Path) -> dict[str, Any]:
    """``report`` plus the benchmarks of the run stored at ``path`` that this one did not run, so
    that ``--only`` does not drop the others' figures; each keeps when and how it ran."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return report
    if not isinstance(earlier, dict) or not isinstance(earlier.get("benchmarks"), dict):
        return report
    kept = {
        name: {"started_at": earlier.get("started_at"), "quick": earlier.get("quick"), **result}
        for name, result in earlier["benchmarks"].items()
        if name not in report["benchmarks"] and isinstance(result, dict)
    }
    return {**report, "benchmarks": {**kept, **report["benchmarks"]}}


def run_benchmark(
    name: str,
    measure: Measure,
    workdir: Path,
    quick: bool,
    reference: Callable[[], dict[str, float]] = reference_ms,
) -> tuple[dict[str, Any], list[Row], bool]:
    """One benchmark's result and rows, and whether it ran through; the machine's reference time
    (see bench/harness/reference.py) is taken just before it and kept with its figures."""
    machine = reference()
    print(f"== {name} == (machine reference: {machine['wall_ms']} ms)", flush=True)
    started = time.perf_counter()
    ok = True
    try:
        result, rows = measure(workdir, quick)
    except Exception as exc:
        traceback.print_exc()
        ok = False
        result, rows = {"error": repr(exc)}, []
        for log in sorted(workdir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {log.name} (tail)\n" + "\n".join(tail))
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["machine_reference_ms"] = machine
    if ok:
        rows.append(
            Row(name, "machine reference workload, before it (lower: faster)", machine["wall_ms"], "ms")
        )
    return result, rows, ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(ALL), help=f"comma separated subset of {','.join(ALL)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in selected if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")

    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "note": "load generators, broker, database and services share the machine's cores",
        "benchmarks": {},
    }
    rows: list[Row] = []
    failed = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for name in selected:
            workdir = Path(tmp) / name
            workdir.mkdir()
            result, new_rows, ok = run_benchmark(name, BENCHES[name], workdir, args.quick)
            if not ok:
                failed.append(name)
            when = {"started_at": report["started_at"], "quick": args.quick}
            report["benchmarks"][name] = {**when, **result, "rows": [r.as_dict() for r in new_rows]}
            rows += new_rows
            for row in new_rows:
                print(f"  {row.metric}: {_cell(row.value)} {row.unit}", flush=True)
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(with_earlier(report, args.out), indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
