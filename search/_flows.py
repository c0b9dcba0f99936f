"""The CLI's flows between the public API and the display: loading tasks under a status line,
searching in this process or in worker processes under one live display, the repeats, the
report and its table, stopping cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mtlsearch import _api as api
from mtlsearch._dashboard import push_to_dashboard
from mtlsearch._events import EventCallbacks
from mtlsearch._liveness import is_transient
from mtlsearch._pool import run_pool
from mtlsearch._results import best_so_far
from mtlsearch._schema import TARGET_ATTR
from mtlsearch._storage import Heartbeat, open_storage, resolve_url
from mtlsearch._study import default_study_name, study_exists
from mtlsearch._views import WorkerView, console, describe_study, err_console, quiet_libraries, results_table, steps_progress, worker_summary
from mtlsearch._worker import Liveness, StoppedDuringOutage, trained_count
from mtlsearch.errors import MtlsearchError, StorageUnavailableError, first_line

def checked_run_options(heartbeat_interval: int, grace_period: int, execution: str | None, device: str, devices: str | None):  # type: ignore[no-untyped-def]
    """Everything ``run`` can check about its own options before it touches data or storage."""

    api.check_execution(execution)
    listed = [d.strip() for d in devices.split(",") if d.strip()] if devices else [device]
    return Heartbeat(heartbeat_interval, grace_period), listed


def load_tasks(settings, data_root: Path | None = None) -> list:  # type: ignore[no-untyped-def]
    with console.status("loading tasks" + (f" (fetching ImageNet weights of {settings.backbone} first)" if settings.pretrained else "")):
        return api.study_tasks(settings, data_root)


def describe(handle, settings) -> int:  # type: ignore[no-untyped-def]

    trained = trained_count(handle.study)
    describe_study(handle.name, handle.url, settings, handle.created, trained)
    return trained


def search_here(handle, settings, tasks, *, device: str, execution: str | None, timeout, beats, patience: float, exit_on_stop: bool = False) -> bool:  # type: ignore[no-untyped-def]
    """Train in this process under the live display; True when Ctrl-C or SIGTERM stopped it."""

    stop_on_signals()
    view = WorkerView(trained=trained_count(handle.study), target=handle.target, best=best_so_far(handle.study), workers={1: "trial"})
    try:
        with view:
            summary = api.search(handle.study, settings, tasks, n_trials=handle.target, device=device, execution=execution, timeout=timeout,
                                 callbacks=EventCallbacks(lambda event: view.handle(1, event)), liveness=Liveness(beats.interval, patience))  # fmt: skip
    except KeyboardInterrupt as exc:
        if isinstance(exc, StoppedDuringOutage):
            console.print(f"[yellow]stopped while the storage was unreachable: trial {exc.trial} could not be failed now; once the "
                          f"storage is back it is failed and retried after {beats.grace} s of silence (the heartbeat grace period)[/]")  # fmt: skip
        else:
            console.print("[yellow]stopped: the running trial was failed and will be retried on the next run[/]")
        if exit_on_stop:
            raise typer.Exit(130) from None
        return True
    console.print(worker_summary(summary))
    return False


def search_in_workers(handle, workers: int, devices: list[str], *, timeout, beats, patience: float, execution: str) -> bool:  # type: ignore[no-untyped-def]
    """``run --workers K``: K worker processes under one display; True when interrupted."""

    args = ["--study-name", handle.name, "--n-trials", str(handle.target), "--heartbeat-interval", str(beats.interval),
            "--grace-period", str(beats.grace), "--patience", str(patience), "--execution", execution]  # fmt: skip
    args += ["--timeout", str(timeout)] if timeout is not None else []
    assigned = [devices[i % len(devices)] for i in range(workers)]
    console.print(f"{workers} workers on {', '.join(assigned)}")
    view = WorkerView(trained=trained_count(handle.study), target=handle.target, best=best_so_far(handle.study),
                      workers={i: f"worker {i} ({d})" for i, d in enumerate(assigned, start=1)})  # fmt: skip
    with view:
        summary = run_pool(args, assigned, storage=handle.url, on_event=view.handle, on_exit=view.exited)
    console.print(f"trained {summary.trained} candidates this run" + (f"; {summary.reused} repeated allocations reused" if summary.reused else ""))
    for index, code, line in summary.failed_workers:
        err_console.print(f"worker {index} exited with {code}: {line}", markup=False, highlight=False)
    if summary.interrupted:
        console.print("[yellow]stopped: running trials were failed and will be retried on the next run[/]")
    elif summary.failed_workers:
        raise typer.Exit(1)
    return summary.interrupted


def repeat(study, settings, tasks, repeats: int, *, device: str, execution: str | None) -> bool:  # type: ignore[no-untyped-def]
    """``--repeats R``; True when interrupted (the repeats stored so far are kept)."""

    progress, bar = steps_progress(f"repeating the front with {repeats} more seeds")

    def trained(number: int, seed: int, accuracy: float, done: int, total: int) -> None:
        progress.update(bar, completed=done, total=total, note=f"trial {number} seed {seed}: {accuracy:.4f}")

    try:
        with progress:
            count = api.repeat_front(study, settings, tasks if tasks is not None else load_tasks(settings), repeats,
                                     device=device, execution=execution, on_trained=trained)  # fmt: skip
    except KeyboardInterrupt:
        console.print("[yellow]stopped: the repeats stored so far are kept; the next run with --repeats trains the rest[/]")
        return True
    if not count:
        console.print(f"the front's candidates already have {repeats} repeats: nothing to train")
    return False


def report(study, path: Path | None) -> None:  # type: ignore[no-untyped-def]
    """The HTML report, the figures saved for optuna-dashboard and the table; a storage that
    cannot be read or written says so in one line instead of failing the command's work."""

    try:
        written = api.report(study, path, dashboard=False)
    except Exception as exc:
        if not _storage_trouble(exc):
            raise
        err_console.print(f"warning: no report: the storage could not be read ({_reason(exc)})", markup=False, highlight=False)
        return
    try:
        push_to_dashboard(study)
        console.print("figures and a summary note saved for optuna-dashboard ('mtlsearch dashboard')")
    except (Exception, MtlsearchError) as exc:
        if not _storage_trouble(exc):
            raise
        err_console.print(f"warning: the figures were not saved for optuna-dashboard: the storage refused a write ({_reason(exc)})",
                          markup=False, highlight=False)  # fmt: skip
    results_table(study)
    console.print(f"report: {written}", markup=False, highlight=False)


def _storage_trouble(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, StorageUnavailableError) or is_transient(exc) or "readonly" in text or "read-only" in text


def _reason(exc: BaseException) -> str:
    return first_line(exc)


def push(study) -> None:  # type: ignore[no-untyped-def]

    push_to_dashboard(study)
    console.print("figures and a summary note saved for optuna-dashboard ('mtlsearch dashboard')")


def open(storage: str | None, study_name: str | None):  # type: ignore[no-untyped-def]
    quiet_libraries()
    return api.open_study(storage=storage, study_name=study_name)


def default_name(settings) -> str:  # type: ignore[no-untyped-def]

    return default_study_name(settings)


def stored_target(storage: str | None, name: str) -> int | None:
    """The target a study already has (None when there is no such study)."""

    opened = open_storage(resolve_url(storage))
    if not study_exists(opened, name):
        return None
    import optuna

    return optuna.load_study(study_name=name, storage=opened).user_attrs.get(TARGET_ATTR)


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the worker cleanly, even where the shell started us ignoring them.

    A stop that lands in a finaliser or a garbage-collection callback (SQLAlchemy has some) is
    swallowed there by Python; it is raised again 50 ms later, to land in the worker's own code
    (again, should it land in one more such callback).
    """
    import signal

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


