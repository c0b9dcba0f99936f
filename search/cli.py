"""The ``mtlsearch`` command line. Heavy imports (torch, timm, optuna, plotly) stay in commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mtlsearch._cli_support import (
    console,
    describe_study,
    err_console,
    print_table,
    push_figures,
    repeat_front,
    quiet_libraries,
    show_trial,
    start_workers,
    stop_on_signals,
    study_settings,
    study_tasks,
    train_and_save,
    work,
)
from mtlsearch.errors import UsageError

app = typer.Typer(
    help="Search how a multi-domain CNN should share its parameters under a budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StorageOpt = Annotated[
    Optional[str],
    typer.Option(help="Database URL (default: $OPTUNA_STORAGE, else sqlite:///mtlsearch.db)."),
]


# Options shared by `run` and `create`: everything that defines a study.
BudgetOpt = Annotated[Optional[float], typer.Option(help="Task-specific fraction of conv weights, in [0, 1] (preset default 0.1).")]
PresetOpt = Annotated[str, typer.Option(help="A preset in studies/ or a path to a .toml file.")]
BackboneOpt = Annotated[Optional[str], typer.Option(help="Registered backbone (see 'mtlsearch backbones').")]
EpochsOpt = Annotated[Optional[int], typer.Option(help="Training epochs per candidate.")]
TrainSizeOpt = Annotated[Optional[int], typer.Option(help="Training images per task, at most.")]
GranularityOpt = Annotated[Optional[str], typer.Option(help="Search unit: layer, block or stage.")]
ImageSizeOpt = Annotated[Optional[int], typer.Option(help="Image side in pixels.")]
DataRootOpt = Annotated[Optional[Path], typer.Option(help="Image-folder tasks: ROOT/<task>/{train,val,test}/<class>/<image>.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(help="Start every candidate from this local checkpoint (.safetensors or a state dict); its sha256 is a study setting.")]
WarmupOpt = Annotated[Optional[int], typer.Option(help="Epochs of each task's classifier alone, on frozen features, before joint training (the paper's pre-training; default 0).")]
SamplerOpt = Annotated[Optional[str], typer.Option(help="tpe (default), random, nsga2 or gp: docs/search-quality.md compares them.")]
EarlyStopOpt = Annotated[Optional[float], typer.Option(help="Opt-in: stop a candidate whose mean val accuracy at a third of its steps is this far below the median of finished trials (e.g. 0.02).")]
ExecutionOpt = Annotated[str, typer.Option(help="How a training step runs the tasks: auto (the faster way on this machine, timed on the first steps), loop (task after task) or stacked (all tasks in one call per layer). loop or stacked repeat a run bit for bit on the CPU.")]
SeedOpt = Annotated[Optional[int], typer.Option(help="Seed of the sampler, the random baseline and training.")]
NTrialsOpt = Annotated[Optional[int], typer.Option(help="Trained trials in the whole study, baselines included (default: the study's, else 12).", min=1)]
TimeoutOpt = Annotated[Optional[float], typer.Option(help="Stop starting new trials after this many seconds.")]
HeartbeatOpt = Annotated[int, typer.Option(help="Seconds between a worker's heartbeats.", min=1)]
GraceOpt = Annotated[int, typer.Option(help="Seconds of silence after which a worker's trial is failed and retried.", min=2)]
PatienceOpt = Annotated[float, typer.Option(help="Seconds a worker keeps retrying an unreachable storage before it gives up.", min=0)]


@app.command()
def run(
    budget: BudgetOpt = None,
    preset: PresetOpt = "embedded",
    study_name: Annotated[Optional[str], typer.Option(help="Study to create or resume (default: from preset, backbone, budget).")] = None,
    storage: StorageOpt = None,
    n_trials: NTrialsOpt = None,
    timeout: TimeoutOpt = None,
    backbone: BackboneOpt = None,
    epochs: EpochsOpt = None,
    train_size: TrainSizeOpt = None,
    granularity: GranularityOpt = None,
    image_size: ImageSizeOpt = None,
    data_root: DataRootOpt = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    workers: Annotated[int, typer.Option(help="Local worker processes (one per GPU); more than one wants PostgreSQL for many.", min=1)] = 1,
    devices: Annotated[Optional[str], typer.Option(help="Comma-separated devices for the workers, assigned round-robin (e.g. cuda:0,cuda:1).")] = None,
    seed: SeedOpt = None,
    head_warmup_epochs: WarmupOpt = None,
    weights: WeightsOpt = None,
    sampler: SamplerOpt = None,
    early_stop: EarlyStopOpt = None,
    execution: ExecutionOpt = "auto",
    repeats: Annotated[int, typer.Option(help="After the search, retrain the front's candidates (and bottom-specific) with this many new seeds; the report shows the spread.", min=0)] = 0,
    heartbeat_interval: HeartbeatOpt = 10,
    grace_period: GraceOpt = 60,
    patience: PatienceOpt = 300.0,
    out: Annotated[Path, typer.Option(help="Folder for the HTML report.")] = Path("mtlsearch-report"),
) -> None:
    """Create or resume a study and train candidates until it holds N trained trials."""
    from mtlsearch._storage import Heartbeat, resolve_url
    from mtlsearch._execution import set_execution

    set_execution(execution)
    settings = study_settings(
        preset, data_root, budget=budget, backbone=backbone, epochs=epochs, train_size=train_size,
        granularity=granularity, image_size=image_size, seed=seed, head_warmup_epochs=head_warmup_epochs,
        weights=weights, sampler=sampler, early_stop=early_stop,
    )  # fmt: skip
    beats = Heartbeat(heartbeat_interval, grace_period)
    device_list = [d.strip() for d in devices.split(",") if d.strip()] if devices else [device]
    url = resolve_url(storage)
    quiet_libraries()
    from mtlsearch._report import write_report
    from mtlsearch._storage import open_storage
    from mtlsearch._study import create_or_load, default_study_name, set_target

    tasks = study_tasks(settings) if workers == 1 else None
    name = study_name or default_study_name(settings)
    study, created = create_or_load(open_storage(url, heartbeat=beats), name, settings)
    target = set_target(study, n_trials)
    from mtlsearch._worker import trained_count

    trained = trained_count(study)
    describe_study(name, url, settings, created, trained)
    report_path = out / f"{name}.html"
    interrupted = False
    if trained >= target:
        console.print(f"the study already holds {trained} trained trials (--n-trials {target}): nothing to train")
    elif workers == 1:
        stop_on_signals()
        try:
            work(study, settings, tasks, n_trials=target, timeout=timeout, device=device_list[0], beats=beats, patience=patience)  # type: ignore[arg-type]
        except KeyboardInterrupt:
            interrupted = True
            console.print("[yellow]stopped: the running trial was failed and will be retried on the next run[/]")
    else:
        interrupted = start_workers(study, name, url, workers, device_list, target=target, timeout=timeout,
                                beats=beats, patience=patience, execution=execution)  # fmt: skip
    if repeats and not interrupted:
        try:
            repeat_front(study, settings, tasks, repeats, device_list[0])
        except KeyboardInterrupt:
            interrupted = True
            console.print("[yellow]stopped: the repeats stored so far are kept; the next run with --repeats trains the rest[/]")
    write_report(study, report_path)
    push_figures(study)
    print_table(study)
    console.print(f"report: {report_path}")
    if interrupted:
        raise typer.Exit(130)


@app.command()
def create(
    study_name: Annotated[Optional[str], typer.Option(help="Study to create (default: from preset, backbone, budget).")] = None,
    storage: StorageOpt = None,
    budget: BudgetOpt = None,
    preset: PresetOpt = "embedded",
    n_trials: NTrialsOpt = None,
    backbone: BackboneOpt = None,
    epochs: EpochsOpt = None,
    train_size: TrainSizeOpt = None,
    granularity: GranularityOpt = None,
    image_size: ImageSizeOpt = None,
    data_root: DataRootOpt = None,
    seed: SeedOpt = None,
    head_warmup_epochs: WarmupOpt = None,
    weights: WeightsOpt = None,
    sampler: SamplerOpt = None,
    early_stop: EarlyStopOpt = None,
) -> None:
    """Create a study for workers to join: settings stored, baselines enqueued, once."""
    from mtlsearch._storage import redact, resolve_url

    settings = study_settings(
        preset, data_root, budget=budget, backbone=backbone, epochs=epochs, train_size=train_size,
        granularity=granularity, image_size=image_size, seed=seed, head_warmup_epochs=head_warmup_epochs,
        weights=weights, sampler=sampler, early_stop=early_stop,
    )  # fmt: skip
    url = resolve_url(storage)
    quiet_libraries()
    from mtlsearch._storage import open_storage
    from mtlsearch._study import TARGET_ATTR, create_or_load, default_study_name, set_target

    name = study_name or default_study_name(settings)
    study, created = create_or_load(open_storage(url), name, settings)
    before = study.user_attrs.get(TARGET_ATTR)
    target = set_target(study, n_trials)
    if created:
        describe_study(name, url, settings, True, 0)
        console.print(f"target: {target} trained trials. Start workers with:\n  mtlsearch worker --study-name {name} --storage '{redact(url)}'")
    elif before != target:
        console.print(f"study {name} already exists on {redact(url)} with the same settings; target changed from {before} to {target} trained trials")
    else:
        console.print(f"study {name} already exists on {redact(url)} with the same settings: nothing to do (target {target} trained trials)")


@app.command()
def worker(
    study_name: Annotated[str, typer.Option(help="The study to join (made by 'mtlsearch create').")],
    storage: StorageOpt = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    n_trials: Annotated[Optional[int], typer.Option(help="Study-wide target of trained trials (default: the study's own).", min=1)] = None,
    timeout: TimeoutOpt = None,
    data_root: Annotated[Optional[Path], typer.Option(help="Where this machine holds the study's image folders (default: the path stored at creation).")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Where this machine holds the study's checkpoint (default: the path stored at creation).")] = None,
    heartbeat_interval: HeartbeatOpt = 10,
    grace_period: GraceOpt = 60,
    patience: PatienceOpt = 300.0,
    execution: ExecutionOpt = "auto",
    events: Annotated[bool, typer.Option(help="Progress as JSON lines on stdout (for 'run --workers').", hidden=True)] = False,
) -> None:
    """Join a study and train candidates until its target of trained trials is reached."""
    from mtlsearch._storage import Heartbeat, resolve_url
    from mtlsearch._execution import set_execution

    set_execution(execution)
    beats = Heartbeat(heartbeat_interval, grace_period)
    url = resolve_url(storage)
    quiet_libraries()
    from mtlsearch._storage import open_storage
    from mtlsearch._settings import with_weights
    from mtlsearch._study import DEFAULT_N_TRIALS, TARGET_ATTR, check_shapes, load_study, stored_settings
    from mtlsearch._worker import trained_count

    study = load_study(open_storage(url, heartbeat=beats), study_name, hint=f"create it first: mtlsearch create --study-name {study_name} --storage URL [settings]")
    settings = with_weights(stored_settings(study), weights)
    check_shapes(study, settings)
    target = n_trials or int(study.user_attrs.get(TARGET_ATTR, DEFAULT_N_TRIALS))
    tasks = study_tasks(settings, data_root)
    if not events:
        describe_study(study_name, url, settings, False, trained_count(study))
    stop_on_signals()
    try:
        work(study, settings, tasks, n_trials=target, timeout=timeout, device=device, beats=beats, patience=patience, events=events)
    except KeyboardInterrupt:
        if not events:
            console.print("[yellow]stopped: the running trial was failed and will be retried[/]")
        raise typer.Exit(130) from None
    if not events and trained_count(study) >= target:  # the study is finished: the dashboard shows it
        push_figures(study)


@app.command()
def proxy(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback is open to the network without authentication.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 13000,
    grace_period: GraceOpt = 60,
    threads: Annotated[int, typer.Option(help="Requests served at once (and database connections).", min=1)] = 10,
) -> None:
    """Serve the storage to workers over gRPC (Optuna's storage proxy): workers use --storage grpc://HOST:PORT."""
    from mtlsearch._storage import redact, resolve_url

    url = resolve_url(storage)
    if url.startswith("grpc://"):
        raise UsageError("the proxy needs a database URL, not grpc://: pass --storage postgresql+psycopg://...")
    quiet_libraries()
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import optuna

    from mtlsearch._liveness import Reaper
    from mtlsearch._storage import open_storage

    try:
        import grpc  # noqa: F401
    except ImportError:
        raise UsageError("the proxy needs grpcio: pip install 'mtlsearch[grpc]'") from None
    backing = optuna.storages.get_storage(open_storage(url, pool_size=threads))
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"warning: the proxy on {host} has no authentication; anyone who reaches port {port} can read and change every study", markup=False)
    stop = threading.Event()
    reaper = threading.Thread(target=Reaper(backing, grace_period).run_forever, args=(max(1, grace_period / 4), stop), daemon=True)
    reaper.start()
    console.print(f"serving {redact(url)} on grpc://{host}:{port} (Ctrl-C stops)", markup=False)
    stop_on_signals()
    try:
        optuna.storages.run_grpc_proxy_server(backing, host=host, port=port, thread_pool=ThreadPoolExecutor(threads))
    except KeyboardInterrupt:
        console.print("proxy stopped")
    finally:
        stop.set()


@app.command()
def report(
    study_name: Annotated[Optional[str], typer.Option(help="Study (default: the only one in the storage).")] = None,
    storage: StorageOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="HTML file to write (default: <study>.html).")] = None,
) -> None:
    """Write the self-contained HTML report of a study, push its figures to the dashboard, print its table."""
    study = _open_study(storage, study_name)
    from mtlsearch._report import write_report

    path = write_report(study, out or Path(f"{study.study_name}.html"))
    push_figures(study)
    print_table(study)
    console.print(f"report: {path}")


def _open_study(storage: str | None, study_name: str | None):  # type: ignore[no-untyped-def]
    """The named study, or the only one in the storage."""
    quiet_libraries()
    from mtlsearch._storage import open_storage, resolve_url
    from mtlsearch._study import load_study

    opened = open_storage(resolve_url(storage))
    if study_name is None:
        names = [s.study_name for s in opened.get_all_studies()]
        if len(names) != 1:
            raise UsageError(f"the storage holds {len(names)} studies ({', '.join(names) or 'none'}): pass --study-name")
        study_name = names[0]
    return load_study(opened, study_name)


@app.command()
def dashboard(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on; the dashboard has no authentication.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Open the storage in optuna-dashboard (figures and notes pushed by run and report)."""
    quiet_libraries()
    from mtlsearch._dashboard import LOOPBACK, serve
    from mtlsearch._storage import open_storage, redact, resolve_url

    url = resolve_url(storage)
    opened = open_storage(url)
    if host not in LOOPBACK:
        err_console.print(f"warning: the dashboard on {host} has no authentication; anyone who reaches port {port} can read and change every study", markup=False)
    console.print(f"optuna-dashboard for {redact(url)} on http://{host}:{port}/dashboard/ (Ctrl-C stops)", markup=False, highlight=False)
    stop_on_signals()
    try:
        serve(opened, host=host, port=port)
    except KeyboardInterrupt:
        console.print("dashboard stopped")


@app.command()
def studies(storage: StorageOpt = None) -> None:
    """List the studies: budget, backbone, tasks, trial counts, best accuracy."""
    quiet_libraries()
    from rich.table import Table

    from mtlsearch._data_out import studies_frame
    from mtlsearch._storage import open_storage, redact, resolve_url

    url = resolve_url(storage)
    frame = studies_frame(open_storage(url))
    if not len(frame):
        console.print(f"{redact(url)} holds no study")
        return
    table = Table(title=f"Studies in {redact(url)}", title_justify="left")
    for col in ("study", "budget", "backbone", "tasks", "trained", "infeasible", "failed", "running", "best accuracy"):
        table.add_column(col, justify="left" if col in ("study", "backbone", "tasks") else "right")
    for r in frame.to_dict("records"):
        trained = f"{r['trained']}/{r['target']}" if r["target"] else str(r["trained"])
        best = "" if r["best_accuracy"] is None or r["best_accuracy"] != r["best_accuracy"] else f"{r['best_accuracy']:.4f}"
        table.add_row(r["study"], "" if r["budget"] is None else f"{r['budget']:g}", r["backbone"] or "(not mtlsearch)", r["tasks"],
                      trained, str(r["infeasible"]), str(r["failed"]), str(r["running"]), best)  # fmt: skip
    console.print(table)


@app.command()
def show(
    trial: Annotated[int, typer.Option(help="Trial number.")],
    study_name: Annotated[Optional[str], typer.Option(help="Study (default: the only one in the storage).")] = None,
    storage: StorageOpt = None,
) -> None:
    """One candidate: its allocation by unit, parameter counts, per-task accuracy."""
    show_trial(_open_study(storage, study_name), trial)


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="File to write.")],
    format: Annotated[str, typer.Option("--format", help="csv, parquet or json.")] = "csv",
    study_name: Annotated[Optional[str], typer.Option(help="Study (default: the only one in the storage).")] = None,
    storage: StorageOpt = None,
) -> None:
    """Write every trial as one row (per-task accuracy and allocation as columns)."""
    from mtlsearch._data_out import EXPORT_FORMATS, export as write

    if format not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
    path, rows = write(_open_study(storage, study_name), format, out)
    console.print(f"{rows} trials written to {path}")


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Folder for model.safetensors, card.json and train.log.")],
    trial: Annotated[Optional[int], typer.Option(help="The trial whose allocation to train.")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="Or a strategy at the study's budget: shared, bottom-specific, top-specific, random, independent.")] = None,
    study_name: Annotated[Optional[str], typer.Option(help="Study (default: the only one in the storage).")] = None,
    storage: StorageOpt = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs over all training images (default: 4 x the study's).", min=1)] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Initialise the backbone from this checkpoint (.safetensors or a state dict).")] = None,
    head_warmup_epochs: WarmupOpt = None,
    data_root: Annotated[Optional[Path], typer.Option(help="Where this machine holds the study's image folders.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    execution: ExecutionOpt = "auto",
) -> None:
    """Train one candidate at full fidelity, test it, and save it (weights, card, log)."""
    from mtlsearch._execution import set_execution

    set_execution(execution)
    if (trial is None) == (strategy is None):
        raise UsageError("pass exactly one of --trial N and --strategy NAME")
    if weights is not None and not weights.is_file():
        raise UsageError(f"weights file {weights} does not exist: pass a .safetensors file or a saved state dict")
    study = _open_study(storage, study_name)
    train_and_save(study, out, trial=trial, strategy=strategy, epochs=epochs, weights=weights, data_root=data_root, device=device,
                   head_warmup_epochs=head_warmup_epochs)  # fmt: skip


@app.command()
def backbones() -> None:
    """List the registered backbones."""
    from mtlsearch.models import BACKBONES

    for entry in BACKBONES.values():
        console.print(f"{entry.name:<18} {entry.description}")


def main() -> None:
    from mtlsearch.errors import MtlsearchError

    try:
        app()
    except UsageError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except MtlsearchError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
