"""The public Python API of the search: what every CLI command does, without the terminal.

    import mtlsearch as ms

    settings = ms.study_settings("embedded", budget=0.1)
    handle = ms.create_study(settings, storage="sqlite:///mtlsearch.db")
    tasks = ms.study_tasks(settings)
    ms.search(handle.study, settings, tasks, n_trials=handle.target)
    ms.report(handle.study, "mtlsearch-report/study.html")

Each function validates what it is given before it touches a database, and raises
``UsageError`` (one line: the problem and the fix) for bad input. Progress is reported through
callbacks (``Callbacks``, ``on_step``, ``on_trained``); only the CLI draws it. Heavy imports
(torch, optuna, plotly) happen inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mtlsearch._dashboard import push_to_dashboard
from mtlsearch._data_out import EXPORT_FORMATS, export, find_trial
from mtlsearch._evaluate import TrainingEvaluator
from mtlsearch._execution import check_execution
from mtlsearch._repeats import run_repeats
from mtlsearch._report import output_path, write_report
from mtlsearch._schema import SEARCH, TARGET_ATTR, TrialRecord
from mtlsearch._settings import DEFAULT_PRESET, Settings, resolve_settings, with_weights
from mtlsearch._storage import Heartbeat, check_storage, creation_lock, open_storage, refused_write, resolve_url
from mtlsearch._study import (
    DEFAULT_N_TRIALS,
    check_data,
    check_shapes,
    create_or_load,
    default_study_name,
    load_study,
    set_target,
    stored_settings,
    study_spec,
    trial_allocation,
)
from mtlsearch._train import resolve_device, study_input
from mtlsearch._trained import FullResult, save_trained, train_full
from mtlsearch._worker import Callbacks, Liveness, WorkerSummary, run_worker
from mtlsearch.errors import UsageError
from mtlsearch.models import STRATEGIES, Candidate, specific_filters, strategy_allocation

if TYPE_CHECKING:
    import optuna

    from mtlsearch.datasets import Task


def study_settings(preset: str = DEFAULT_PRESET, *, data_root: Path | str | None = None, **overrides: object) -> Settings:
    """A preset's settings with ``overrides`` (any ``Settings`` or ``Fidelity`` field; ``None``
    keeps the preset's), validated, with the tasks' names and classes filled in. No image is
    decoded and no storage touched."""
    from mtlsearch.datasets import describe_tasks

    settings = resolve_settings(preset, data_root=data_root, **overrides)
    described = describe_tasks(settings.dataset, data_root=Path(settings.data_root) if settings.data_root else None)
    return dataclasses.replace(settings, tasks=tuple(n for n, _ in described), num_classes=tuple(c for _, c in described))


def study_tasks(settings: Settings, data_root: Path | None = None) -> list[Task]:
    """The study's tasks (training and validation images at most the fidelity's ``train_size``
    and ``val_size``), checked
    against the names and classes the study was created with; ImageNet weights fetched first
    when the backbone is pretrained, so a machine without them fails here, not in a trial."""
    from mtlsearch.datasets import load_tasks
    from mtlsearch.models import ensure_pretrained

    root = data_root or (Path(settings.data_root) if settings.data_root else None)
    if settings.pretrained:
        ensure_pretrained(settings.backbone)
    tasks = load_tasks(settings.dataset, image_size=settings.image_size, train_size=settings.fidelity.train_size,
                       val_size=settings.fidelity.val_size, data_root=root, crop_pct=study_input(settings).crop_pct)  # fmt: skip
    found = tuple((t.name, t.num_classes) for t in tasks)
    if settings.tasks and found != tuple(zip(settings.tasks, settings.num_classes)):
        raise UsageError(
            f"the data at {root} holds tasks {[f'{n} ({c} classes)' for n, c in found]} but the study was created with "
            f"{[f'{n} ({c} classes)' for n, c in zip(settings.tasks, settings.num_classes)]}: pass the study's --data-root"
        )
    return tasks


class StudyHandle(NamedTuple):
    study: optuna.Study
    name: str
    url: str  # as given; ``redact`` it before showing it
    created: bool
    target: int  # the study-wide target of trained trials


def create_study(
    settings: Settings, *, storage: str | None = None, study_name: str | None = None, n_trials: int | None = None,
    heartbeat: Heartbeat | None = None,
) -> StudyHandle:  # fmt: skip
    """Create the study (settings stored, baselines enqueued, once) or load it when it exists
    with the same settings (else ``SettingsMismatchError`` naming the differences); set its
    target when ``n_trials`` is given. ``storage``: a URL, default ``$OPTUNA_STORAGE`` or
    ``sqlite:///mtlsearch.db``."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    url = resolve_url(storage)
    name = study_name or default_study_name(settings)
    with creation_lock(url):  # two processes creating one SQLite study at once: one creates, the other joins
        storage = open_storage(url, heartbeat=heartbeat)
        try:
            study, created = create_or_load(storage, name, settings)
            return StudyHandle(study, name, url, created, set_target(study, n_trials))
        except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as exc:  # one transaction each: nothing half-written
            raise refused_write(url, exc) from None


def preflight(settings: Settings, *, storage: str | None = None, device: str | None = None, out: Path | None = None, write: bool = True) -> None:
    """Everything that can be checked before a study is touched, in seconds: the storage is
    there (``check_storage``: nothing created), the device exists on this machine, the
    checkpoint fits the backbone, the report's folder can be written. Each refusal is a
    ``UsageError``; nothing has been stored."""
    check_storage(resolve_url(storage), write=write)
    if device is not None:
        resolve_device(device)
    if settings.weights:
        from mtlsearch.models import check_checkpoint

        check_checkpoint(settings.backbone, Path(settings.weights))
    if out is not None:
        check_writable(output_path(out, "study", ".html").parent)


def check_writable(folder: Path) -> None:
    """``folder`` exists as a writable folder, or can be made (its nearest existing parent is)."""
    import os

    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"cannot write into {folder}: {probe} is a file; choose another --out")
    if not os.access(probe, os.W_OK):
        raise UsageError(f"cannot write into {folder}: {probe} is read-only; choose another --out")


def open_study(*, storage: str | None = None, study_name: str | None = None, heartbeat: Heartbeat | None = None) -> optuna.Study:
    """The named study, or the only one in the storage."""
    opened = open_storage(resolve_url(storage), heartbeat=heartbeat)
    if study_name is None:
        names = [s.study_name for s in opened.get_all_studies()]
        if len(names) != 1:
            raise UsageError(f"the storage holds {len(names)} studies ({', '.join(names) or 'none'}): pass --study-name")
        study_name = names[0]
    return load_study(opened, study_name)


def join_study(
    study_name: str, *, storage: str | None = None, heartbeat: Heartbeat | None = None, weights: Path | None = None
) -> tuple[optuna.Study, Settings, int]:
    """``(study, settings, target)`` for a worker joining a study made by ``create_study``: its
    checkpoint found on this machine, its backbone checked against this machine's timm."""
    opened = open_storage(resolve_url(storage), heartbeat=heartbeat)
    study = load_study(opened, study_name, hint=f"create it first: mtlsearch create --study-name {study_name} --storage URL [settings]")
    settings = with_weights(stored_settings(study), weights)  # type: ignore[arg-type]
    check_shapes(study, settings)
    check_data(study, settings)
    return study, settings, int(study.user_attrs.get(TARGET_ATTR, DEFAULT_N_TRIALS))


def search(
    study: optuna.Study,
    settings: Settings,
    tasks: list[Task],
    *,
    n_trials: int,
    device: str = "auto",
    execution: str | None = None,
    timeout: float | None = None,
    callbacks: Callbacks | None = None,
    liveness: Liveness | None = None,
) -> WorkerSummary:
    """Train candidates in this process until the study holds ``n_trials`` trained trials (or
    ``timeout`` seconds pass): ``run_worker`` with the training evaluator."""
    evaluator = TrainingEvaluator(settings, tasks, device, check_execution(execution))
    return run_worker(study, settings, evaluator, n_trials=n_trials, timeout=timeout, callbacks=callbacks, liveness=liveness)


def repeat_front(
    study: optuna.Study, settings: Settings, tasks: list[Task], repeats: int, *, device: str = "auto", execution: str | None = None,
    on_trained: Callable[[int, int, float, int, int], None] | None = None,
) -> int:  # fmt: skip
    """Retrain the front's candidates (and bottom-specific) with ``repeats`` new seeds, where not
    stored yet; returns how many trainings ran. The report then shows their spread."""
    return run_repeats(study, settings, tasks, repeats, device=resolve_device(device), execution=check_execution(execution), on_trained=on_trained)


def report(study: optuna.Study, out: Path | str | None = None, *, dashboard: bool = True) -> Path:
    """Write the study's self-contained HTML report (``out``: a ``.html`` file, or a folder,
    default ``mtlsearch-report/``, that gets ``<study>.html``); with ``dashboard``, also save its
    figures and a summary note in the study for optuna-dashboard."""
    path = write_report(study, output_path(None if out is None else Path(out), study.study_name, ".html"))
    if dashboard:
        push_to_dashboard(study)
    return path


def export_trials(study: optuna.Study, out: Path | str | None = None, *, fmt: str = "csv") -> tuple[Path, int]:
    """Every trial as one row (``csv``, ``parquet`` or ``json``) to ``out`` (a file with that
    suffix, or a folder, default ``mtlsearch-report/``, that gets ``<study>.<fmt>``); ``(path, rows)``."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    return export(study, fmt, output_path(None if out is None else Path(out), study.study_name, f".{fmt}"))


class UnitRow(NamedTuple):
    unit: str
    fraction: float
    specific: int  # task-specific filters, per task
    filters: int


class TrialDetail(NamedTuple):
    """One trial in full (``mtlsearch show``)."""

    record: TrialRecord
    settings: Settings
    candidate: Candidate | None  # None until it has an allocation
    units: list[UnitRow]


def trial_detail(study: optuna.Study, number: int) -> TrialDetail:
    trial = find_trial(study, number)
    record = TrialRecord.from_frozen(trial)
    settings = stored_settings(study)
    allocation = trial_allocation(trial)
    if not allocation:
        return TrialDetail(record, settings, None, [])  # type: ignore[arg-type]
    spec = study_spec(study, settings)  # type: ignore[arg-type]
    candidate = Candidate.create(spec, settings.num_classes, allocation, settings.granularity, strategy=record.strategy)  # type: ignore[union-attr, arg-type]
    units = [
        UnitRow(unit, float(allocation.get(unit, 0.0)), sum(specific_filters(c, allocation.get(unit, 0.0)) for c in convs), sum(c.out_channels for c in convs))
        for unit, convs in spec.unit_convs(settings.granularity).items()  # type: ignore[union-attr, arg-type]
    ]
    return TrialDetail(record, settings, candidate, units)  # type: ignore[arg-type]


def train(
    study: optuna.Study,
    out: Path | str,
    *,
    trial: int | None = None,
    strategy: str | None = None,
    epochs: int | None = None,
    weights: Path | None = None,
    head_warmup_epochs: int | None = None,
    data_root: Path | None = None,
    device: str = "auto",
    execution: str | None = None,
    allow_over_budget: bool = False,
    on_step: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> tuple[FullResult, Path]:
    """Train one candidate of the study (a trial's allocation, or a strategy at its budget) on
    all training images for ``epochs`` (default: 4 x the study's), test it, save it to ``out``
    (``model.safetensors``, ``card.json``, ``train.log``); ``(result, folder)``. A candidate
    over the study's budget (``independent``, or a trial of an older search) is refused unless
    ``allow_over_budget``; the card records its task-specific fraction against the budget."""
    if (trial is None) == (strategy is None):
        raise UsageError("pass exactly one of --trial N and --strategy NAME")
    if weights is not None and not Path(weights).is_file():
        raise UsageError(f"weights file {weights} does not exist: pass a .safetensors file or a saved state dict")
    check_execution(execution)
    settings = stored_settings(study)
    if settings is None:
        raise UsageError(f"study {study.study_name!r} was not created by mtlsearch: choose another --study-name")
    if weights is None:  # the study's own checkpoint, if it has one
        settings = with_weights(settings, None)
        weights = Path(settings.weights) if settings.weights else None
    if head_warmup_epochs is not None:
        settings = dataclasses.replace(settings, fidelity=dataclasses.replace(settings.fidelity, head_warmup_epochs=head_warmup_epochs))
    check_data(study, settings)
    spec = study_spec(study, settings)
    if strategy is not None:
        if strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
        allocation = strategy_allocation(strategy, spec, settings.granularity, settings.budget, seed=settings.seed)  # type: ignore[arg-type]
        source: dict[str, object] = {"study": study.study_name, "strategy": strategy}
    else:
        chosen = find_trial(study, trial)  # type: ignore[arg-type]
        allocation = trial_allocation(chosen) if chosen.params else {}  # an enqueued trial is not a candidate yet
        if not allocation:
            raise UsageError(f"trial {trial} has no allocation yet ({chosen.state.name}): choose a finished trial")
        strategy = chosen.user_attrs.get("strategy", SEARCH)
        source = {"study": study.study_name, "trial": chosen.number, "brief_val_accuracy": chosen.values[0] if chosen.values else None}
    candidate = Candidate.create(spec, settings.num_classes, allocation, settings.granularity, strategy=strategy)  # type: ignore[arg-type]
    if candidate.violation(settings.budget) > 1e-12 and not allow_over_budget:
        raise UsageError(
            f"{strategy} is over the study's budget ({candidate.specific_fraction:.4f} task-specific against {settings.budget:g}): "
            "choose a candidate within it, or pass --allow-over-budget to train it anyway"
        )
    full = dataclasses.replace(settings, fidelity=dataclasses.replace(settings.fidelity, train_size=None, val_size=None))  # type: ignore[arg-type]
    tasks = study_tasks(full, data_root)
    lines: list[str] = []

    def keep(line: str) -> None:
        lines.append(line)
        log(line)

    result = train_full(candidate, settings, tasks, epochs=epochs or 4 * settings.fidelity.epochs, device=resolve_device(device),
                        weights=weights, source=source, on_step=on_step, log=keep, execution=execution)  # fmt: skip
    return result, save_trained(result, Path(out), lines)
