"""Data out: the studies in a storage, one trial in full, and every trial as a flat table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mtlsearch._schema import KINDS, SETTINGS_ATTR, TARGET_ATTR, Counts, records
from mtlsearch.errors import UsageError, writing

if TYPE_CHECKING:
    import optuna
    import pandas as pd

EXPORT_FORMATS = ("csv", "parquet", "json")
ACC_PREFIX, ALLOC_PREFIX = "accuracy.", "allocation."


def studies_frame(storage: optuna.storages.BaseStorage) -> pd.DataFrame:
    """One row per study: settings that identify it, trial counts by kind (``Counts``: the
    ``trained`` column counts what the workers' target counts), best accuracy."""
    import pandas as pd

    rows = []
    for summary in storage.get_all_studies():
        settings = summary.user_attrs.get(SETTINGS_ATTR, {})
        trials = records(storage.get_all_trials(summary._study_id, deepcopy=False))
        counts = Counts.of(trials)
        rows.append({
            "study": summary.study_name,
            "budget": settings.get("budget"),
            "backbone": settings.get("backbone"),
            "tasks": ", ".join(settings.get("tasks", [])),
            "trained": counts.trained,
            "target": summary.user_attrs.get(TARGET_ATTR),
            **{kind: counts[kind] for kind in KINDS if kind != "trained"},
            "best_accuracy": max((t.accuracy for t in trials if t.kind == "trained" and t.accuracy is not None), default=None),
            "mtlsearch": bool(settings),
        })  # fmt: skip
    return pd.DataFrame(rows)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """Every trial, one row, attributes flattened: ``accuracy.<task>``, ``allocation.<unit>``."""
    import pandas as pd

    rows = []
    for t in records(study.get_trials(deepcopy=False)):
        row: dict[str, object] = {
            "trial": t.number, "state": t.state, "kind": t.kind, "strategy": t.strategy,
            "accuracy": t.accuracy, "params": t.params, "specific_fraction": t.specific_fraction, "constraint": t.constraint,
            "feasible": t.feasible, "train_seconds": t.train_seconds, "images_per_second": t.images_per_second, "device": t.device,
            "execution": t.execution, "seed": t.seed, "worker": t.worker, "reused_from": t.reused_from, "stopped_early": t.stopped_at,
            "retry_of": t.retry_of, "error": t.error, "datetime_start": t.datetime_start, "datetime_complete": t.datetime_complete,
        }  # fmt: skip
        row.update({ACC_PREFIX + k: v for k, v in t.task_accuracy.items()})
        row.update({ALLOC_PREFIX + k: v for k, v in t.allocation.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def export(study: optuna.Study, fmt: str, out: Path) -> tuple[Path, int]:
    """Write ``trials_table`` as csv, parquet or json (records); ``(path, rows)``. A file that
    cannot be written (a folder in its way, a read-only or full disk) is a ``UsageError``."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError("parquet export needs pyarrow: pip install 'mtlsearch[parquet]', or use --format csv") from None
    out = Path(out)
    table = trials_table(study).convert_dtypes()  # integers stay integers next to missing values
    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            table.to_csv(out, index=False)
        elif fmt == "parquet":
            table.to_parquet(out, index=False)
        else:
            table.to_json(out, orient="records", indent=1, date_format="iso")
    return out, len(table)


def find_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise UsageError(f"study {study.study_name!r} has trials 0 to {len(trials) - 1}, not {number}: fix --trial")
    return trials[number]
