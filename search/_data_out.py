"""Data out: the studies in a storage, one trial in full, and every trial as a flat table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mtlsearch._study import CONSTRAINTS_KEY, SETTINGS_ATTR, TARGET_ATTR
from mtlsearch.errors import UsageError

if TYPE_CHECKING:
    import optuna
    import pandas as pd

EXPORT_FORMATS = ("csv", "parquet", "json")
ACC_PREFIX, ALLOC_PREFIX = "accuracy.", "allocation."


def studies_frame(storage: optuna.storages.BaseStorage) -> pd.DataFrame:
    """One row per study: settings that identify it, trial counts by state, best accuracy."""
    import pandas as pd
    from optuna.trial import TrialState

    rows = []
    for summary in storage.get_all_studies():
        settings = summary.user_attrs.get(SETTINGS_ATTR, {})
        trials = storage.get_all_trials(summary._study_id, deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE and "reused_from" not in t.user_attrs]
        rows.append({
            "study": summary.study_name,
            "budget": settings.get("budget"),
            "backbone": settings.get("backbone"),
            "tasks": ", ".join(settings.get("tasks", [])),
            "trained": len(complete),
            "target": summary.user_attrs.get(TARGET_ATTR),
            "infeasible": sum(t.state == TrialState.PRUNED and "stopped_early" not in t.user_attrs for t in trials),
            "stopped": sum(t.state == TrialState.PRUNED and "stopped_early" in t.user_attrs for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "running": sum(t.state == TrialState.RUNNING for t in trials),
            "waiting": sum(t.state == TrialState.WAITING for t in trials),
            "best_accuracy": max((t.values[0] for t in complete if t.values), default=None),
            "mtlsearch": bool(settings),
        })  # fmt: skip
    return pd.DataFrame(rows)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """Every trial, one row, attributes flattened: ``accuracy.<task>``, ``allocation.<unit>``."""
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        constraint = (t.system_attrs.get(CONSTRAINTS_KEY) or [None])[0]
        row: dict[str, object] = {
            "trial": t.number,
            "state": t.state.name,
            "strategy": attrs.get("strategy"),
            "accuracy": t.values[0] if t.values else None,
            "params": t.values[1] if t.values else attrs.get("params"),
            "specific_fraction": attrs.get("specific_fraction"),
            "constraint": constraint,
            "feasible": None if constraint is None else constraint <= 0,
            "train_seconds": attrs.get("train_seconds"),
            "images_per_second": attrs.get("images_per_second"),
            "device": attrs.get("device"),
            "execution": attrs.get("execution"),
            "seed": attrs.get("seed"),
            "worker": attrs.get("worker"),
            "reused_from": attrs.get("reused_from"),
            "stopped_early": attrs.get("stopped_early", {}).get("step"),
            "retry_of": attrs.get("retry_of", t.system_attrs.get("failed_trial")),
            "datetime_start": t.datetime_start,
            "datetime_complete": t.datetime_complete,
        }
        row.update({ACC_PREFIX + k: v for k, v in attrs.get("task_accuracy", {}).items()})
        row.update({ALLOC_PREFIX + k: v for k, v in attrs.get("allocation", {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def export(study: optuna.Study, fmt: str, out: Path) -> tuple[Path, int]:
    """Write ``trials_table`` as csv, parquet or json (records); ``(path, rows)``."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: folder {out.parent} does not exist; create it or fix --out")
    table = trials_table(study).convert_dtypes()  # integers stay integers next to missing values
    if fmt == "csv":
        table.to_csv(out, index=False)
    elif fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError("parquet export needs pyarrow: pip install 'mtlsearch[parquet]', or use --format csv") from None
        table.to_parquet(out, index=False)
    else:
        table.to_json(out, orient="records", indent=1, date_format="iso")
    return out, len(table)


def find_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise UsageError(f"study {study.study_name!r} has trials 0 to {len(trials) - 1}, not {number}: fix --trial")
    return trials[number]
