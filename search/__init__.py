"""mtlsearch: search how a multi-domain CNN should share its parameters under a budget.

The public Python API (the CLI is a thin layer over it):

- settings: ``study_settings`` (a preset with overrides, validated), ``Settings``, ``Fidelity``;
- studies: ``create_study`` (or resume it), ``open_study``, ``join_study`` (a worker's view);
- searching: ``study_tasks``, ``search`` (a worker in this process), ``run_worker`` with your own
  ``Evaluator`` (``TrainingEvaluator`` is the default), ``Callbacks`` for progress,
  ``repeat_front`` (the seed noise of the front);
- results: ``records`` / ``TrialRecord`` (every trial, classified), ``study_counts``,
  ``pareto_info``, ``report`` (HTML and optuna-dashboard), ``export_trials``, ``trial_detail``;
- training a chosen candidate: ``train``, ``train_allocation``, ``load_trained``, ``predict``.

Names resolve lazily, so ``import mtlsearch`` (and ``mtlsearch --help``) imports neither torch
nor optuna.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "study_settings": "_api", "study_tasks": "_api", "create_study": "_api", "open_study": "_api", "join_study": "_api",
    "search": "_api", "repeat_front": "_api", "report": "_api", "export_trials": "_api", "trial_detail": "_api", "train": "_api",
    "StudyHandle": "_api", "TrialDetail": "_api",
    "Settings": "_settings", "Fidelity": "_settings", "available_presets": "_settings",
    "Evaluator": "_evaluate", "TrainingEvaluator": "_evaluate",
    "run_worker": "_worker", "Callbacks": "_worker", "Liveness": "_worker", "WorkerSummary": "_worker", "study_counts": "_worker",
    "TrialRecord": "_schema", "Counts": "_schema", "records": "_schema",
    "pareto_info": "_results", "trials_frame": "_results",
    "TrainResult": "_train", "train_allocation": "_train",
    "load_trained": "_trained", "predict": "_trained",
}  # fmt: skip

__all__ = [
    "__version__",
    "Callbacks",
    "Counts",
    "Evaluator",
    "Fidelity",
    "Liveness",
    "Settings",
    "StudyHandle",
    "TrainResult",
    "TrainingEvaluator",
    "TrialDetail",
    "TrialRecord",
    "WorkerSummary",
    "available_presets",
    "create_study",
    "export_trials",
    "join_study",
    "load_trained",
    "open_study",
    "pareto_info",
    "predict",
    "records",
    "repeat_front",
    "report",
    "run_worker",
    "search",
    "study_counts",
    "study_settings",
    "study_tasks",
    "train",
    "train_allocation",
    "trial_detail",
    "trials_frame",
]

if TYPE_CHECKING:
    from mtlsearch._api import (
        StudyHandle, TrialDetail, create_study, export_trials, join_study, open_study, repeat_front, report, search,
        study_settings, study_tasks, train, trial_detail,
    )  # fmt: skip
    from mtlsearch._evaluate import Evaluator, TrainingEvaluator
    from mtlsearch._results import pareto_info, trials_frame
    from mtlsearch._schema import Counts, TrialRecord, records
    from mtlsearch._settings import Fidelity, Settings, available_presets
    from mtlsearch._train import TrainResult, train_allocation
    from mtlsearch._trained import load_trained, predict
    from mtlsearch._worker import Callbacks, Liveness, WorkerSummary, run_worker, study_counts


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(f"mtlsearch.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mtlsearch' has no attribute {name!r}")
