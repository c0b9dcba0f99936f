"""The ``mtlsearch`` command line. Heavy imports (torch, timm, optuna, plotly) stay in commands."""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from mtlsearch.errors import UsageError

app = typer.Typer(
    help="Search how a multi-domain CNN should share its parameters under a budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

StorageOpt = Annotated[
    Optional[str],
    typer.Option(help="Database URL (default: $OPTUNA_STORAGE, else sqlite:///mtlsearch.db)."),
]


def _quiet_libraries() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Fixed parameter.*")


def _print_table(study: object) -> None:
    from rich.table import Table

    from mtlsearch._report import TASK_PREFIX, pareto_info, summary_table

    info = pareto_info(study)  # type: ignore[arg-type]
    if not len(info.trained):
        console.print("No trained trial yet.")
        return
    table_data = summary_table(info)
    reference = info.baselines.set_index("strategy")["accuracy"].get("bottom-specific")
    table = Table(title="Baselines and the best searched candidates (front: on the Pareto front)", title_justify="left")
    task_cols = [c for c in table_data.columns if c.startswith(TASK_PREFIX)]
    for name in ("trial", "strategy", "params", "specific", "accuracy", "vs bottom", *[c.removeprefix(TASK_PREFIX) for c in task_cols], "front"):
        table.add_column(name, justify="left" if name == "strategy" else "right")
    for row in table_data.to_dict("records"):
        delta = "" if reference is None else f"{row['accuracy'] - reference:+.4f}"
        table.add_row(
            str(row["trial"]), row["strategy"], f"{row['params']:,.0f}", f"{row['specific_fraction']:.3f}",
            f"{row['accuracy']:.4f}", delta, *[f"{row[c]:.3f}" for c in task_cols], "*" if row["pareto"] else "",
        )  # fmt: skip
    console.print(table)


@app.command()
def run(
    budget: Annotated[Optional[float], typer.Option(help="Task-specific fraction of conv weights, in [0, 1] (preset default 0.1).")] = None,
    preset: Annotated[str, typer.Option(help="A preset in studies/ or a path to a .toml file.")] = "embedded",
    study_name: Annotated[Optional[str], typer.Option(help="Study to create or resume (default: from preset, backbone, budget).")] = None,
    storage: StorageOpt = None,
    n_trials: Annotated[int, typer.Option(help="Trained trials in the whole study, baselines included.", min=1)] = 12,
    timeout: Annotated[Optional[float], typer.Option(help="Stop starting new trials after this many seconds.")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="Registered backbone (see 'mtlsearch backbones').")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs per candidate.")] = None,
    train_size: Annotated[Optional[int], typer.Option(help="Training images per task, at most.")] = None,
    granularity: Annotated[Optional[str], typer.Option(help="Search unit: layer, block or stage.")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Image side in pixels.")] = None,
    data_root: Annotated[Optional[Path], typer.Option(help="Image-folder tasks: ROOT/<task>/{train,val,test}/<class>/<image>.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[Optional[int], typer.Option(help="Seed of the sampler, the random baseline and training.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the HTML report.")] = Path("mtlsearch-report"),
) -> None:
    """Create or resume a study and train candidates until it holds N trained trials."""
    from mtlsearch._settings import resolve_settings
    from mtlsearch._storage import redact, resolve_url

    settings = resolve_settings(
        preset, budget=budget, backbone=backbone, epochs=epochs, train_size=train_size,
        granularity=granularity, image_size=image_size, data_root=data_root, seed=seed,
    )  # fmt: skip
    url = resolve_url(storage)
    if data_root is not None:
        from mtlsearch.datasets import scan_folder

        scan_folder(data_root)  # fail on a bad layout before loading anything
    _quiet_libraries()
    from mtlsearch._report import write_report
    from mtlsearch._storage import open_storage
    from mtlsearch._study import create_or_load, default_study_name
    from mtlsearch._worker import trained_count
    from mtlsearch.datasets import load_tasks

    with console.status("loading tasks"):
        tasks = load_tasks(
            settings.dataset, image_size=settings.image_size, train_size=settings.fidelity.train_size,
            data_root=Path(settings.data_root) if settings.data_root else None,
        )  # fmt: skip
    settings = dataclasses.replace(
        settings, tasks=tuple(t.name for t in tasks), num_classes=tuple(t.num_classes for t in tasks)
    )
    name = study_name or default_study_name(settings)
    study, created = create_or_load(open_storage(url), name, settings)
    trained = trained_count(study)
    console.print(
        f"[bold]{name}[/] on {redact(url)}: {'created, baselines enqueued' if created else f'resumed with {trained} trained trials'}\n"
        f"{settings.backbone} · {len(tasks)} tasks ({', '.join(settings.tasks)}) · budget {settings.budget:g} · "
        f"{settings.fidelity.epochs} epochs of {settings.fidelity.train_size} images per task"
    )
    report_path = out / f"{name}.html"
    interrupted = False
    _stop_on_signals()
    try:
        _run_worker(study, settings, tasks, n_trials=n_trials, timeout=timeout, device=device)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]stopped: the running trial was failed and will be retried on the next run[/]")
    write_report(study, report_path)
    _print_table(study)
    console.print(f"report: {report_path}")
    if interrupted:
        raise typer.Exit(130)


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the worker cleanly, even where the shell started us ignoring them."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def _run_worker(study: object, settings: object, tasks: list, *, n_trials: int, timeout: float | None, device: str) -> None:
    from mtlsearch._progress import RichCallbacks
    from mtlsearch._worker import run_worker, trained_count

    best = None
    if study.best_trials:  # type: ignore[attr-defined]
        top = max(study.best_trials, key=lambda t: t.values[0])  # type: ignore[attr-defined]
        best = (top.values[0], top.number, top.user_attrs.get("strategy", "search"))
    trained = trained_count(study)  # type: ignore[arg-type]
    if trained >= n_trials:
        console.print(f"the study already holds {trained} trained trials (--n-trials {n_trials}): nothing to train")
        return
    with RichCallbacks(console, trained=trained, target=n_trials, best=best) as callbacks:
        summary = run_worker(study, settings, tasks, n_trials=n_trials, timeout=timeout, device=device, callbacks=callbacks)  # type: ignore[arg-type]
    console.print(
        f"trained {len(summary.trained)} candidates this run; {len(summary.infeasible)} over-budget proposals skipped"
        + (f"; {len(summary.failed)} diverged" if summary.failed else "")
        + ("; stopped by --timeout" if summary.stopped_by == "timeout" else "")
    )


@app.command()
def report(
    study_name: Annotated[Optional[str], typer.Option(help="Study (default: the only one in the storage).")] = None,
    storage: StorageOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="HTML file to write (default: <study>.html).")] = None,
) -> None:
    """Write the self-contained HTML report of a study and print its table."""
    _quiet_libraries()
    import optuna

    from mtlsearch._report import write_report
    from mtlsearch._storage import open_storage, resolve_url
    from mtlsearch._study import load_study

    opened = open_storage(resolve_url(storage))
    if study_name is None:
        names = [s.study_name for s in optuna.get_all_study_summaries(opened)]
        if len(names) != 1:
            raise UsageError(f"the storage holds {len(names)} studies ({', '.join(names) or 'none'}): pass --study-name")
        study_name = names[0]
    study = load_study(opened, study_name)
    path = write_report(study, out or Path(f"{study_name}.html"))
    _print_table(study)
    console.print(f"report: {path}")


@app.command()
def backbones() -> None:
    """List the registered backbones."""
    from mtlsearch.models import BACKBONES

    for entry in BACKBONES.values():
        console.print(f"{entry.name:<18} {entry.description}")


def main() -> None:
    try:
        app()
    except UsageError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
