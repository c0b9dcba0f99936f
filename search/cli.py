"""The ``mtlsearch`` command line: each command is options in (typer), the public API
(``_api``) and a display out (``_views``). Heavy imports (torch, timm, optuna, plotly) stay in
the functions that need them, so ``mtlsearch --help`` pays for none."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mtlsearch import _api as api
from mtlsearch import _flows as flows
from mtlsearch._dashboard import LOOPBACK, serve
from mtlsearch._data_out import studies_frame
from mtlsearch._events import EventCallbacks, json_lines
from mtlsearch._liveness import Reaper
from mtlsearch._storage import Heartbeat, open_storage, redact, resolve_url
from mtlsearch._views import console, describe_study, err_console, quiet_libraries, steps_progress, studies_table, trial_view
from mtlsearch._worker import Liveness, trained_count
from mtlsearch.errors import MtlsearchError, UsageError

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
ValSizeOpt = Annotated[Optional[int], typer.Option(help="Validation images per task that score a candidate, at most: a fixed random subset (default: all of them).")]
GranularityOpt = Annotated[Optional[str], typer.Option(help="Search unit: layer, block or stage.")]
ImageSizeOpt = Annotated[Optional[int], typer.Option(help="Image side in pixels.")]
DataRootOpt = Annotated[Optional[Path], typer.Option(help="Image-folder tasks: ROOT/<task>/{train,val,test}/<class>/<image>.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(help="Start every candidate from this local checkpoint (.safetensors or a state dict); its sha256 is a study setting.")]
WarmupOpt = Annotated[Optional[int], typer.Option(help="Epochs of each task's classifier alone, on frozen features, before joint training (the paper's pre-training; default 0).")]
SamplerOpt = Annotated[Optional[str], typer.Option(help="tpe (default), random, nsga2 or gp: docs/search-quality.md compares them.")]
AugmentOpt = Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Random-resized crop and flip of every training batch (default: the preset's; on for the real-data presets).")]
EarlyStopOpt = Annotated[Optional[float], typer.Option(help="Opt-in: stop a candidate whose mean val accuracy at a third of its steps is this far below the median of finished trials (e.g. 0.02).")]
ExecutionOpt = Annotated[Optional[str], typer.Option(help="How a training step runs the tasks: auto (the faster way on this machine, timed on a copy of the first candidate), loop (task after task) or stacked (all tasks in one call per layer); default: the study's (its preset's execution, else auto). loop or stacked repeat a run bit for bit on the CPU.")]
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
    val_size: ValSizeOpt = None,
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
    augment: AugmentOpt = None,
    execution: ExecutionOpt = None,
    repeats: Annotated[int, typer.Option(help="After the search, retrain the front's candidates (and bottom-specific) with this many new seeds; the report shows the spread.", min=0)] = 0,
    heartbeat_interval: HeartbeatOpt = 10,
    grace_period: GraceOpt = 60,
    patience: PatienceOpt = 300.0,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the HTML report (default mtlsearch-report/), or a .html file.")] = None,
) -> None:
    """Create or resume a study and train candidates until it holds N trained trials."""
    beats, devices = flows.checked_run_options(heartbeat_interval, grace_period, execution, device, devices)
    settings = api.study_settings(preset, data_root=data_root, budget=budget, backbone=backbone, epochs=epochs, train_size=train_size, val_size=val_size,
                                  granularity=granularity, image_size=image_size, seed=seed, head_warmup_epochs=head_warmup_epochs,
                                  weights=weights, sampler=sampler, early_stop=early_stop, augment=augment, execution=execution)  # fmt: skip
    execution = settings.execution  # --execution, else the preset's: this run's way, its workers' and its repeats'
    for each in devices:
        api.preflight(settings, storage=storage, device=each, out=out)  # before any data is loaded or anything stored
    quiet_libraries()
    tasks = flows.load_tasks(settings) if workers == 1 else None
    handle = api.create_study(settings, storage=storage, study_name=study_name, n_trials=n_trials, heartbeat=beats)
    trained = flows.describe(handle, settings)
    if trained >= handle.target:
        console.print(f"the study already holds {trained} trained trials (--n-trials {handle.target}): nothing to train")
        interrupted = False
    elif workers == 1:
        interrupted = flows.search_here(handle, settings, tasks, device=devices[0], execution=execution, timeout=timeout, beats=beats, patience=patience)
    else:
        interrupted = flows.search_in_workers(handle, workers, devices, timeout=timeout, beats=beats, patience=patience, execution=execution)
    if repeats and not interrupted:
        interrupted = flows.repeat(handle.study, settings, tasks, repeats, device=devices[0], execution=execution)
    flows.report(handle.study, out)
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
    val_size: ValSizeOpt = None,
    granularity: GranularityOpt = None,
    image_size: ImageSizeOpt = None,
    data_root: DataRootOpt = None,
    seed: SeedOpt = None,
    head_warmup_epochs: WarmupOpt = None,
    weights: WeightsOpt = None,
    sampler: SamplerOpt = None,
    early_stop: EarlyStopOpt = None,
    augment: AugmentOpt = None,
    execution: Annotated[Optional[str], typer.Option(help="How the workers' training steps run the tasks unless a worker passes its own --execution: auto, loop or stacked (default: the preset's, else auto).")] = None,
) -> None:
    """Create a study for workers to join: settings stored, baselines enqueued, once."""

    api.check_execution(execution)
    settings = api.study_settings(preset, data_root=data_root, budget=budget, backbone=backbone, epochs=epochs, train_size=train_size, val_size=val_size,
                                  granularity=granularity, image_size=image_size, seed=seed, head_warmup_epochs=head_warmup_epochs,
                                  weights=weights, sampler=sampler, early_stop=early_stop, augment=augment, execution=execution)  # fmt: skip
    api.preflight(settings, storage=storage)
    quiet_libraries()
    before = flows.stored_target(storage, study_name or flows.default_name(settings))
    handle = api.create_study(settings, storage=storage, study_name=study_name, n_trials=n_trials)
    where = redact(handle.url)
    if handle.created:
        flows.describe(handle, settings)
        console.print(f"target: {handle.target} trained trials. Start workers with:\n  "
                      f"mtlsearch worker --study-name {shlex.quote(handle.name)} --storage {shlex.quote(where)}", markup=False)  # fmt: skip
    elif before != handle.target:
        console.print(f"study {handle.name} already exists on {where} with the same settings; target changed from {before} to {handle.target} trained trials", markup=False)
    else:
        console.print(f"study {handle.name} already exists on {where} with the same settings: nothing to do (target {handle.target} trained trials)", markup=False)


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
    execution: ExecutionOpt = None,
    events: Annotated[bool, typer.Option(help="Progress as JSON lines on stdout (for 'run --workers').", hidden=True)] = False,
) -> None:
    """Join a study and train candidates until its target of trained trials is reached."""

    beats = Heartbeat(heartbeat_interval, grace_period)
    api.check_execution(execution)
    quiet_libraries()
    study, settings, target = api.join_study(study_name, storage=storage, heartbeat=beats, weights=weights)
    if execution is not None:  # this worker's way, over the one stored on the study
        settings = dataclasses.replace(settings, execution=execution)
    api.preflight(settings, storage=storage, device=device, write=True)
    tasks = flows.load_tasks(settings, data_root)
    if not events:
        describe_study(study_name, api.resolve_url(storage), settings, False, trained_count(study))
        flows.search_here(api.StudyHandle(study, study_name, api.resolve_url(storage), False, n_trials or target), settings, tasks,
                     device=device, execution=execution, timeout=timeout, beats=beats, patience=patience, exit_on_stop=True)  # fmt: skip
        if trained_count(study) >= (n_trials or target):  # the study is finished: the dashboard shows it
            flows.push(study)
        return
    flows.stop_on_signals()
    try:
        api.search(study, settings, tasks, n_trials=n_trials or target, device=device, execution=execution, timeout=timeout,
                   callbacks=EventCallbacks(json_lines()), liveness=Liveness(beats.interval, patience))  # fmt: skip
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def proxy(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback is open to the network without authentication.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 13000,
    grace_period: GraceOpt = 60,
    threads: Annotated[int, typer.Option(help="Requests served at once (and database connections).", min=1)] = 10,
) -> None:
    """Serve the storage to workers over gRPC (Optuna's storage proxy): workers use --storage grpc://HOST:PORT."""

    url = resolve_url(storage)
    if url.startswith("grpc://"):
        raise UsageError("the proxy needs a database URL, not grpc://: pass --storage postgresql+psycopg://...")
    quiet_libraries()
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import optuna


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
    flows.stop_on_signals()
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
    out: Annotated[Optional[Path], typer.Option(help="Folder for the HTML report (default mtlsearch-report/), or a .html file.")] = None,
) -> None:
    """Write the self-contained HTML report of a study, push its figures to the dashboard, print its table."""
    study = flows.open(storage, study_name)
    flows.report(study, out)


@app.command()
def dashboard(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on; the dashboard has no authentication.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Open the storage in optuna-dashboard (figures and notes pushed by run and report)."""
    quiet_libraries()

    url = resolve_url(storage)
    opened = open_storage(url)
    if host not in LOOPBACK:
        err_console.print(f"warning: the dashboard on {host} has no authentication; anyone who reaches port {port} can read and change every study", markup=False)
    console.print(f"optuna-dashboard for {redact(url)} on http://{host}:{port}/dashboard/ (Ctrl-C stops)", markup=False, highlight=False)
    flows.stop_on_signals()
    try:
        serve(opened, host=host, port=port)
    except KeyboardInterrupt:
        console.print("dashboard stopped")


@app.command()
def studies(storage: StorageOpt = None) -> None:
    """List the studies: budget, backbone, tasks, trial counts, best accuracy."""
    quiet_libraries()

    url = resolve_url(storage)
    studies_table(studies_frame(open_storage(url)), redact(url))


@app.command()
def show(
    trial: Annotated[int, typer.Option(help="Trial number.")],
    study_name: Annotated[Optional[str], typer.Option(help="Study (default: the only one in the storage).")] = None,
    storage: StorageOpt = None,
) -> None:
    """One candidate: its allocation by unit, parameter counts, per-task accuracy."""

    study = flows.open(storage, study_name)
    trial_view(api.trial_detail(study, trial), study.study_name)


@app.command()
def export(
    out: Annotated[Optional[Path], typer.Option(help="Folder for the file (default mtlsearch-report/, as <study>.<format>), or a file.")] = None,
    format: Annotated[str, typer.Option("--format", help="csv, parquet or json.")] = "csv",
    study_name: Annotated[Optional[str], typer.Option(help="Study (default: the only one in the storage).")] = None,
    storage: StorageOpt = None,
) -> None:
    """Write every trial as one row (per-task accuracy and allocation as columns)."""
    if format not in api.EXPORT_FORMATS:
        raise UsageError(f"unknown export format {format!r}: use one of {', '.join(api.EXPORT_FORMATS)}")
    path, rows = api.export_trials(flows.open(storage, study_name), out, fmt=format)
    console.print(f"{rows} trials written to {path}", markup=False)


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
    execution: ExecutionOpt = None,
    allow_over_budget: Annotated[bool, typer.Option(help="Train a candidate over the study's budget (independent, say); the card records it.")] = False,
) -> None:
    """Train one candidate at full fidelity, test it, and save it (weights, card, log)."""

    api.check_execution(execution)
    if (trial is None) == (strategy is None):
        raise UsageError("pass exactly one of --trial N and --strategy NAME")
    study = flows.open(storage, study_name)
    progress, bar = steps_progress("training")
    with progress:
        result, folder = api.train(study, out, trial=trial, strategy=strategy, epochs=epochs, weights=weights, head_warmup_epochs=head_warmup_epochs,
                                   data_root=data_root, device=device, execution=execution, allow_over_budget=allow_over_budget, log=lambda line: progress.console.print(line, markup=False, highlight=False),
                                   on_step=lambda done, total: progress.update(bar, completed=done, total=total))  # type: ignore[arg-type]  # fmt: skip
    console.print(f"mean accuracy: val {result.card['mean_val_accuracy']:.4f}, test {result.card['mean_test_accuracy']:.4f}\n"
                  f"saved to {folder}: model.safetensors, card.json, train.log (reload with mtlsearch.load_trained)", markup=False)  # fmt: skip


@app.command()
def backbones() -> None:
    """List the registered backbones."""
    from mtlsearch.models import BACKBONES

    for entry in BACKBONES.values():
        console.print(f"{entry.name:<18} {entry.description}", markup=False)


def main() -> None:
    """The console script: every refusal is one line on stderr, exit 2 for bad input (options
    the parser rejects included), 1 for other errors mtlsearch raises on purpose."""
    try:
        code = app(standalone_mode=False)  # without standalone mode, click returns an Exit's code instead of raising it
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except UsageError as exc:
        _fail(str(exc), 2)
    except MtlsearchError as exc:
        _fail(str(exc), 1)
    except Exception as exc:  # the parser's own (typer's vendored click): an unknown option, a value of the wrong type
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help was printed
            sys.exit(0)
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        command = getattr(getattr(exc, "ctx", None), "command_path", "mtlsearch")
        _fail(f"{exc.format_message()} (see {command} --help)", 2)
    if isinstance(code, int) and code:
        sys.exit(code)


def _fail(message: str, code: int) -> None:
    err_console.print(f"error: {' '.join(message.split())}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)
