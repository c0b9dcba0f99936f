"""What the commands share: the consoles, settings with tasks, the worker and its display."""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console

from mtlsearch.errors import UsageError

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def quiet_libraries() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Fixed parameter.*")
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*")


def print_table(study: object) -> None:
    import pandas as pd
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
    spread = "seeds" in table_data.columns
    for name in ("trial", "strategy", "params", "specific", "accuracy", "vs bottom", *(["over seeds"] if spread else []), *[c.removeprefix(TASK_PREFIX) for c in task_cols], "front"):
        table.add_column(name, justify="left" if name == "strategy" else "right")
    for row in table_data.to_dict("records"):
        delta = "" if reference is None else f"{row['accuracy'] - reference:+.4f}"
        seeds = [] if not spread else ["" if pd.isna(row["seeds"]) else f"{row['accuracy_mean']:.4f} ± {row['accuracy_std']:.4f} ({row['seeds']:.0f})"]
        table.add_row(
            str(row["trial"]), row["strategy"], f"{row['params']:,.0f}", f"{row['specific_fraction']:.3f}",
            f"{row['accuracy']:.4f}", delta, *seeds, *[f"{row[c]:.3f}" for c in task_cols], "*" if row["pareto"] else "",
        )  # fmt: skip
    console.print(table)
    if not spread and len(info.trained) > 1:
        from mtlsearch._repeats import noise_notes

        console.print(f"[dim]{noise_notes([])[0]}[/]")


def study_settings(preset: str, data_root: Path | None, **overrides: object):  # type: ignore[no-untyped-def]
    """Validated settings with the tasks' names and classes; no image decoded, no storage touched."""
    from mtlsearch._settings import resolve_settings
    from mtlsearch.datasets import describe_tasks

    settings = resolve_settings(preset, data_root=data_root, **overrides)
    described = describe_tasks(settings.dataset, data_root=Path(settings.data_root) if settings.data_root else None)
    return dataclasses.replace(settings, tasks=tuple(n for n, _ in described), num_classes=tuple(c for _, c in described))


def study_tasks(settings, data_root: Path | None = None) -> list:  # type: ignore[no-untyped-def]
    """The study's tasks, checked against the names and classes it was created with."""
    from mtlsearch.datasets import load_tasks
    from mtlsearch.models import ensure_pretrained

    root = data_root or (Path(settings.data_root) if settings.data_root else None)
    if settings.pretrained:
        with console.status(f"fetching ImageNet weights of {settings.backbone}"):
            ensure_pretrained(settings.backbone)
    with console.status("loading tasks"):
        tasks = load_tasks(settings.dataset, image_size=settings.image_size, train_size=settings.fidelity.train_size, data_root=root)
    found = tuple((t.name, t.num_classes) for t in tasks)
    if settings.tasks and found != tuple(zip(settings.tasks, settings.num_classes)):
        raise UsageError(
            f"the data at {root} holds tasks {[f'{n} ({c} classes)' for n, c in found]} but the study was created with "
            f"{[f'{n} ({c} classes)' for n, c in zip(settings.tasks, settings.num_classes)]}: pass the study's --data-root"
        )
    return tasks


def describe_study(name: str, url: str, settings, created: bool, trained: int) -> None:  # type: ignore[no-untyped-def]
    from mtlsearch._storage import redact

    console.print(
        f"[bold]{name}[/] on {redact(url)}: {'created, baselines enqueued' if created else f'resumed with {trained} trained trials'}\n"
        f"{settings.backbone} · {len(settings.tasks)} tasks ({', '.join(settings.tasks)}) · budget {settings.budget:g} · "
        f"{settings.fidelity.epochs} epochs of {settings.fidelity.train_size} images per task · {settings.sampler} sampler"
        + (f" · early stop {settings.early_stop:g} below the median" if settings.early_stop is not None else "")
    )


def best_so_far(study) -> tuple[float, int, str] | None:  # type: ignore[no-untyped-def]
    from mtlsearch._report import pareto_info

    info = pareto_info(study)
    if not len(info.trained):
        return None
    top = info.trained.loc[info.trained["accuracy"].idxmax()]
    return float(top["accuracy"]), int(top["trial"]), str(top["strategy"])


def start_workers(study, name: str, url: str, k: int, devices: list[str], *, target: int, timeout: float | None, beats, patience: float, execution: str = "auto") -> bool:  # type: ignore[no-untyped-def]
    from mtlsearch._pool import run_pool
    from mtlsearch._worker import trained_count

    args = ["--study-name", name, "--n-trials", str(target), "--heartbeat-interval", str(beats.interval),
            "--grace-period", str(beats.grace), "--patience", str(patience), "--execution", execution]  # fmt: skip
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    assigned = [devices[i % len(devices)] for i in range(k)]
    console.print(f"{k} workers on {', '.join(assigned)}")
    summary = run_pool(args, assigned, storage=url, console=console, trained=trained_count(study), target=target, best=best_so_far(study))
    console.print(
        f"trained {summary.trained} candidates this run; {summary.infeasible} over-budget proposals skipped"
        + (f"; {summary.reused} repeated allocations reused" if summary.reused else "")
    )
    for index, code, line in summary.failed_workers:
        err_console.print(f"worker {index} exited with {code}: {line}", markup=False, highlight=False)
    if summary.interrupted:
        console.print("[yellow]stopped: running trials were failed and will be retried on the next run[/]")
    elif summary.failed_workers:
        raise typer.Exit(1)
    return summary.interrupted


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the worker cleanly, even where the shell started us ignoring them.

    A stop that lands in a finaliser or a garbage-collection callback (SQLAlchemy has some) is
    swallowed there by Python; it is raised again 50 ms later, to land in the worker's own code
    (again, should it land in one more such callback).
    """
    import signal
    import sys

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if not hasattr(signal, "setitimer"):  # Windows
        return
    default = sys.unraisablehook

    def swallowed(info: sys.UnraisableHookArgs) -> None:
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
            signal.setitimer(signal.ITIMER_REAL, 0.05)
        else:
            default(info)

    signal.signal(signal.SIGALRM, stop)
    sys.unraisablehook = swallowed


def work(study, settings, tasks: list, *, n_trials: int, timeout: float | None, device: str, beats, patience: float, events: bool = False) -> None:  # type: ignore[no-untyped-def]
    from mtlsearch._progress import RichCallbacks
    from mtlsearch._worker import Liveness, run_worker, trained_count

    liveness = Liveness(heartbeat_interval=beats.interval, patience=patience)
    if events:
        from mtlsearch._pool import EventCallbacks

        run_worker(study, settings, tasks, n_trials=n_trials, timeout=timeout, device=device, callbacks=EventCallbacks(), liveness=liveness)
        return
    trained = trained_count(study)
    with RichCallbacks(console, trained=trained, target=n_trials, best=best_so_far(study)) as callbacks:
        summary = run_worker(study, settings, tasks, n_trials=n_trials, timeout=timeout, device=device, callbacks=callbacks, liveness=liveness)
    console.print(
        f"trained {len(summary.trained)} candidates this run; {len(summary.infeasible)} over-budget proposals skipped"
        + (f"; {len(summary.stopped)} stopped early" if summary.stopped else "")
        + (f"; {len(summary.reused)} repeated allocations reused" if summary.reused else "")
        + (f"; {len(summary.failed)} diverged" if summary.failed else "")
        + (f"; {len(summary.lost)} failed by other workers after a silence" if summary.lost else "")
        + ("; stopped by --timeout" if summary.stopped_by == "timeout" else "")
    )


def repeat_front(study, settings, tasks: list | None, repeats: int, device: str) -> None:  # type: ignore[no-untyped-def]
    """``--repeats R``: the front's candidates (and bottom-specific) with R new seeds, then what
    the spread says."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from mtlsearch._repeats import noise_notes, run_repeats
    from mtlsearch._report import pareto_info, repeated_rows
    from mtlsearch._train import resolve_device

    tasks = tasks if tasks is not None else study_tasks(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[note]}"))
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"repeating the front with {repeats} more seeds", total=None, note="")

        def trained(number: int, seed: int, accuracy: float, done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total, note=f"trial {number} seed {seed}: {accuracy:.4f}")

        count = run_repeats(study, settings, tasks, repeats, device=resolve_device(device), on_trained=trained)
    if not count:
        console.print(f"the front's candidates already have {repeats} repeats: nothing to train")
    for note in noise_notes(repeated_rows(pareto_info(study))):
        console.print(note)


def push_figures(study) -> None:  # type: ignore[no-untyped-def]
    """The report's figures and a summary note into the study, for optuna-dashboard."""
    from mtlsearch._dashboard import push_to_dashboard

    push_to_dashboard(study)
    console.print("figures and a summary note saved for optuna-dashboard ('mtlsearch dashboard')")


def show_trial(study, number: int) -> None:  # type: ignore[no-untyped-def]
    """A candidate in full: counts, allocation by unit (with its filters), per-task accuracy."""
    from rich.table import Table

    from mtlsearch._data_out import find_trial
    from mtlsearch._study import stored_settings, study_spec, trial_allocation
    from mtlsearch.models import Candidate, specific_filters

    trial = find_trial(study, number)
    settings = stored_settings(study)
    attrs = trial.user_attrs
    allocation = trial_allocation(trial)
    notes = [f"trial {trial.number} of {study.study_name}", trial.state.name, attrs.get("strategy", "search")]
    notes += [f"{k} {attrs[k]}" for k in ("reused_from", "retry_of", "worker", "device") if k in attrs]
    if "train_seconds" in attrs:
        notes.append(f"trained in {attrs['train_seconds']:.1f} s" + (f", tasks run {attrs['execution']}" if "execution" in attrs else ""))
    if "stopped_early" in attrs:
        stop = attrs["stopped_early"]
        notes.append(f"stopped early at step {stop['step']}: {attrs.get('probe_accuracy', float('nan')):.4f} vs median {stop['median']:.4f} - {stop['margin']:g}")
    console.print(" · ".join(str(n) for n in notes), markup=False)
    if not allocation:
        console.print("no allocation proposed yet (the trial has not started)")
        return
    spec = study_spec(study, settings)
    candidate = Candidate.create(spec, settings.num_classes, allocation, settings.granularity, strategy=attrs.get("strategy", "search"))
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
    for unit, convs in spec.unit_convs(settings.granularity).items():
        fraction = float(allocation.get(unit, 0.0))
        k, n = sum(specific_filters(cv, fraction) for cv in convs), sum(cv.out_channels for cv in convs)
        units.add_row(unit, f"{fraction:.3f}", f"{k}/{n}", "█" * round(20 * k / n) if n else "")
    console.print(units)
    if attrs.get("task_accuracy"):
        tasks = Table(title="Validation accuracy", title_justify="left")
        tasks.add_column("task")
        tasks.add_column("accuracy", justify="right")
        for task, accuracy in attrs["task_accuracy"].items():
            tasks.add_row(task, f"{accuracy:.4f}")
        tasks.add_row("mean", f"{trial.values[0]:.4f}" if trial.values else "")
        console.print(tasks)


def train_and_save(study, out: Path, *, trial: int | None, strategy: str | None, epochs: int | None,  # type: ignore[no-untyped-def]
                   weights: Path | None, data_root: Path | None, device: str, head_warmup_epochs: int | None = None) -> None:  # fmt: skip
    """``mtlsearch train``: the candidate, all training images, a progress bar, the saved model."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from mtlsearch._data_out import find_trial
    from mtlsearch._settings import with_weights
    from mtlsearch._study import stored_settings, study_spec, trial_allocation
    from mtlsearch._train import resolve_device
    from mtlsearch._trained import save_trained, train_full
    from mtlsearch.models import STRATEGIES, Candidate, strategy_allocation

    settings = stored_settings(study)
    if weights is None:  # the study's own checkpoint, if it has one
        settings = with_weights(settings, None)
        weights = Path(settings.weights) if settings.weights else None
    if head_warmup_epochs is not None:
        settings = dataclasses.replace(settings, fidelity=dataclasses.replace(settings.fidelity, head_warmup_epochs=head_warmup_epochs))
    spec = study_spec(study, settings)
    if strategy is not None:
        if strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
        allocation = strategy_allocation(strategy, spec, settings.granularity, settings.budget, seed=settings.seed)
        source = {"study": study.study_name, "strategy": strategy}
    else:
        chosen = find_trial(study, trial)  # type: ignore[arg-type]
        allocation = trial_allocation(chosen) if chosen.params else {}  # an enqueued trial is not a candidate yet
        if not allocation:
            raise UsageError(f"trial {trial} has no allocation yet ({chosen.state.name}): choose a finished trial")
        strategy = chosen.user_attrs.get("strategy", "search")
        source = {"study": study.study_name, "trial": chosen.number, "brief_val_accuracy": chosen.values[0] if chosen.values else None}
    candidate = Candidate.create(spec, settings.num_classes, allocation, settings.granularity, strategy=strategy)  # type: ignore[arg-type]
    full = dataclasses.replace(settings, fidelity=dataclasses.replace(settings.fidelity, train_size=None))  # type: ignore[arg-type]
    tasks = study_tasks(full, data_root)
    epochs = epochs or 4 * settings.fidelity.epochs
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        console.print(line, markup=False, highlight=False)

    progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                        TimeRemainingColumn(), console=console)  # fmt: skip
    bar = progress.add_task("steps", total=1)
    with progress:
        result = train_full(candidate, settings, tasks, epochs=epochs, device=resolve_device(device), weights=weights,
                            source=source, on_step=lambda done, total: progress.update(bar, completed=done, total=total), log=log)  # fmt: skip
    folder = save_trained(result, out, lines)
    console.print(f"mean accuracy: val {result.card['mean_val_accuracy']:.4f}, test {result.card['mean_test_accuracy']:.4f}\n"
                  f"saved to {folder}: model.safetensors, card.json, train.log (reload with mtlsearch.load_trained)")  # fmt: skip
