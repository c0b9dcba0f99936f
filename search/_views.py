"""What the CLI draws: the live display of workers, the tables, one trial in full.

The only module that renders (rich). A worker's progress arrives as events (``_events``),
from this process or from the workers of ``run --workers``, and ``WorkerView`` draws both.
"""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mtlsearch._events import Event
from mtlsearch._results import TASK_PREFIX, pareto_info, result_notes, summary_table
from mtlsearch._storage import redact

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from mtlsearch._api import TrialDetail
    from mtlsearch._settings import Settings
    from mtlsearch._worker import WorkerSummary

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def quiet_libraries() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Fixed parameter.*")
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*")


def best_note(best: tuple[float, int, str] | None) -> str:
    if best is None:
        return "best: none yet"
    accuracy, number, strategy = best
    return f"best: {accuracy:.4f} (trial {number}, {strategy})"


class WorkerView:
    """A live display: trained trials of the study's target (with the best so far), and one row
    per worker with its running trial's steps. ``handle(worker, event)`` draws one event;
    ``workers`` maps a worker's number to its label (one worker: ``{1: "trial"}``)."""

    def __init__(self, *, trained: int, target: int, best: tuple[float, int, str] | None, workers: dict[int, str]) -> None:
        self.best, self.many = best, len(workers) > 1
        self.progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[note]}", markup=False), console=console,
        )  # fmt: skip
        self.trials = self.progress.add_task("trials", total=target, completed=trained, note=best_note(best))
        self.rows = {i: self.progress.add_task(f"  {label}", total=1, completed=0, note="starting", visible=self.many) for i, label in workers.items()}

    def __enter__(self) -> WorkerView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def exited(self, worker: int, code: int) -> None:
        self.progress.update(self.rows[worker], note=f"exited ({code})" if code else "done")

    def handle(self, worker: int, event: Event) -> None:
        kind, row = event["event"], self.rows[worker]
        by = f"  worker {worker}" if self.many else ""
        if kind == "start":
            note = f"#{event['trial']} {event['strategy']}, {event['specific']:.1%} task-specific, {event['params']:,} params"  # type: ignore[str-format]
            if not self.many:
                self.progress.update(self.trials, description=f"trial {int(event['trained']) + 1} of {event['target']}")  # type: ignore[call-overload]
            self.progress.reset(row, total=1, completed=0, visible=True, note=note)
        elif kind == "step":
            self.progress.update(row, completed=event["done"], total=event["total"])  # type: ignore[arg-type]
        elif kind in ("finish", "stopped"):
            self.progress.advance(self.trials)
            self.progress.update(row, note="next candidate", visible=self.many)
            if kind == "finish":
                accuracy = float(event["accuracy"])  # type: ignore[arg-type]
                if self.best is None or accuracy > self.best[0]:
                    self.best = (accuracy, int(event["trial"]), str(event["strategy"]))  # type: ignore[call-overload]
                self.progress.update(self.trials, note=best_note(self.best))
                console.print(f"  trial {event['trial']:>3}  {event['strategy']:<16} accuracy {accuracy:.4f}  "
                              f"params {event['params']:>11,}  {event['seconds']:5.1f} s{by}")  # fmt: skip
            else:
                console.print(f"  trial {event['trial']:>3}  stopped early: accuracy {event['accuracy']:.4f} at a third of its steps, "
                              f"median {event['median']:.4f}  {event['seconds']:5.1f} s{by}")  # fmt: skip
        elif kind == "reused":
            console.print(f"  trial {event['trial']:>3}  same allocation as trial {event['earlier']}: result reused, not trained{by}")
        elif kind == "failed":
            console.print(f"  trial {event['trial']:>3}  failed: {event['error']}{by}", markup=False)
        elif kind == "infeasible":
            self.progress.update(self.trials, note=best_note(self.best) + " · skipped an over-budget proposal")
        elif kind == "waiting":
            self.progress.update(row, visible=True, note=f"waiting for {event['in_flight']} trial(s) in flight elsewhere")
        elif kind == "storage":
            self.progress.update(row, visible=True, note=f"storage unreachable ({event['reason']}); retrying in {event['delay']:.0f} s")


def describe_study(name: str, url: str, settings: Settings, created: bool, trained: int) -> None:

    console.print(
        f"[bold]{name}[/] on {redact(url)}: {'created, baselines enqueued' if created else f'resumed with {trained} trained trials'}\n"
        f"{settings.backbone} · {len(settings.tasks)} tasks ({', '.join(settings.tasks)}) · budget {settings.budget:g} · "
        f"{settings.granularity} units · {settings.fidelity.describe()} · "
        f"{settings.sampler} sampler"
        + (f" · early stop {settings.early_stop:g} below the median" if settings.early_stop is not None else "")
        + (f" · tasks run {settings.execution}" if settings.execution != "auto" else ""),
        highlight=False,
    )


def worker_summary(summary: WorkerSummary) -> str:
    return (
        f"trained {len(summary.trained)} candidates this run"
        + (f"; {len(summary.infeasible)} over-budget proposals skipped" if summary.infeasible else "")
        + (f"; {len(summary.stopped)} stopped early" if summary.stopped else "")
        + (f"; {len(summary.reused)} repeated allocations reused" if summary.reused else "")
        + (f"; {len(summary.failed)} diverged" if summary.failed else "")
        + (f"; {len(summary.lost)} failed by other workers after a silence" if summary.lost else "")
        + ("; stopped by --timeout" if summary.stopped_by == "timeout" else "")
    )


def results_table(study: optuna.Study) -> None:
    """The baselines and the best searched candidates, then what the noise says about them."""
    import pandas as pd


    info = pareto_info(study)
    if not len(info.trained):
        console.print("No trained trial yet.")
        return
    data = summary_table(info)
    reference = info.baselines.set_index("strategy")["accuracy"].get("bottom-specific")
    table = Table(title="Baselines and the best searched candidates (front: on the Pareto front)", title_justify="left")
    task_cols = [c for c in data.columns if c.startswith(TASK_PREFIX)]
    spread = "seeds" in data.columns
    for name in ("trial", "strategy", "params", "specific", "accuracy", "vs bottom", *(["over seeds"] if spread else []),
                 *[c.removeprefix(TASK_PREFIX) for c in task_cols], "front"):  # fmt: skip
        table.add_column(name, justify="left" if name == "strategy" else "right")
    for row in data.to_dict("records"):
        delta = "" if reference is None else f"{row['accuracy'] - reference:+.4f}"
        seeds = [] if not spread else ["" if pd.isna(row["seeds"]) else f"{row['accuracy_mean']:.4f} ± {row['accuracy_std']:.4f} ({row['seeds']:.0f})"]
        table.add_row(
            str(row["trial"]), row["strategy"], f"{row['params']:,.0f}", f"{row['specific_fraction']:.4f}",
            f"{row['accuracy']:.4f}", delta, *seeds, *[f"{row[c]:.3f}" for c in task_cols], "*" if row["pareto"] else "",
        )  # fmt: skip
    console.print(table)
    for note in result_notes(study, info):
        console.print(note, markup=False, highlight=False)


def studies_table(frame: pd.DataFrame, shown_url: str) -> None:
    if not len(frame):
        console.print(f"{shown_url} holds no study", markup=False)
        return
    table = Table(title=f"Studies in {shown_url}", title_justify="left")
    for col in ("study", "budget", "backbone", "tasks", "trained", "stopped", "reused", "infeasible", "failed", "running", "waiting", "best accuracy"):
        table.add_column(col, justify="left" if col in ("study", "backbone", "tasks") else "right")
    for r in frame.to_dict("records"):
        trained = f"{r['trained']}/{r['target']}" if r["target"] else str(r["trained"])
        best = "" if r["best_accuracy"] is None or r["best_accuracy"] != r["best_accuracy"] else f"{r['best_accuracy']:.4f}"
        table.add_row(r["study"], "" if r["budget"] is None else f"{r['budget']:g}", r["backbone"] or "(not mtlsearch)", r["tasks"], trained,
                      *[str(r[k]) for k in ("stopped", "reused", "infeasible", "failed", "running", "waiting")], best)  # fmt: skip
    console.print(table)


def trial_view(detail: TrialDetail, study_name: str) -> None:
    """``mtlsearch show``: counts, allocation by unit (with its filters), per-task accuracy."""
    record, settings, candidate = detail.record, detail.settings, detail.candidate
    notes = [f"trial {record.number} of {study_name}", record.state, record.strategy]
    notes += [f"{label} {value}" for label, value in (("reused_from", record.reused_from), ("retry_of", record.retry_of),
                                                      ("worker", record.worker), ("device", record.device)) if value is not None]  # fmt: skip
    if record.train_seconds is not None:
        notes.append(f"trained in {record.train_seconds:.1f} s" + (f", tasks run {record.execution}" if record.execution else ""))
    if record.stopped_at is not None:
        notes.append(f"stopped early at step {record.stopped_at}: {record.probe_accuracy or float('nan'):.4f} at a third of its steps")
    if record.error:
        notes.append(f"failed: {record.error}")
    console.print(" · ".join(str(n) for n in notes), markup=False)
    if candidate is None:
        console.print("no allocation proposed yet (the trial has not started)")
        return
    c = candidate.counts
    counts = Table(title="Parameters", title_justify="left", show_header=False)
    for label, value in (("total (shared + every task's own)", f"{c.total:,}"), ("shared", f"{c.shared:,}"),
                         ("task-specific conv weights, per task", f"{c.specific_conv:,}"), ("norms, all tasks", f"{c.norms:,}"),
                         ("classifiers, all tasks", f"{c.heads:,}"),
                         ("task-specific fraction", f"{candidate.specific_fraction:.4f} (budget {settings.budget:g}: "
                          f"{'within' if candidate.violation(settings.budget) <= 1e-12 else 'over'})")):  # fmt: skip
        counts.add_row(label, value)
    console.print(counts)
    units = Table(title="Allocation by unit (input side first)", title_justify="left")
    for col in ("unit", "fraction", "task-specific filters", ""):
        units.add_column(col, justify="left" if col in ("unit", "") else "right")
    for row in detail.units:
        units.add_row(row.unit, f"{row.fraction:.3f}", f"{row.specific}/{row.filters}", "█" * round(20 * row.specific / row.filters) if row.filters else "")
    console.print(units)
    if record.task_accuracy:
        tasks = Table(title="Validation accuracy", title_justify="left")
        tasks.add_column("task")
        tasks.add_column("accuracy", justify="right")
        for task, accuracy in record.task_accuracy.items():
            tasks.add_row(task, f"{accuracy:.4f}")
        tasks.add_row("mean", "" if record.accuracy is None else f"{record.accuracy:.4f}")
        console.print(tasks)


def steps_progress(label: str) -> tuple[Progress, object]:
    """A bar of steps for one long training (``train``, ``--repeats``): ``(progress, task)``."""
    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                        TimeRemainingColumn(), TextColumn("{task.fields[note]}", markup=False), console=console)  # fmt: skip
    return progress, progress.add_task("steps", total=None, note="")
