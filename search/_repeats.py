"""``--repeats R``: the front's candidates retrained with new seeds, to measure the noise.

A repeat is stored on the study (system attribute ``mtlsearch:repeat:<trial>:<seed>``, one key
per result, so two processes never overwrite each other) and never becomes a trial: the
sampler learns from the search, not from the repeats. ``_results`` reads them: the report then
shows each repeated candidate's mean and spread, and says which differences on the front lie
within the noise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mtlsearch._evaluate import TrainingEvaluator
from mtlsearch._results import pareto_info, repeats_of
from mtlsearch._schema import REPEAT_PREFIX, SEARCH, STRATEGY
from mtlsearch._settings import Settings
from mtlsearch._study import study_spec, trial_allocation
from mtlsearch.models import Candidate

if TYPE_CHECKING:
    import optuna

    from mtlsearch.datasets import Task


def repeat_targets(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The front's trained trials, and the bottom-specific baseline they are judged against."""
    info = pareto_info(study)
    numbers = set(info.front["trial"]) | set(info.baselines.loc[info.baselines["strategy"] == "bottom-specific", "trial"])
    return [t for t in study.get_trials(deepcopy=False) if t.number in numbers]


def run_repeats(
    study: optuna.Study,
    settings: Settings,
    tasks: Sequence[Task],
    repeats: int,
    *,
    device: str,
    execution: str | None = None,
    on_trained: Callable[[int, int, float, int, int], None] | None = None,
) -> int:
    """Train every target with seeds ``seed + 1 .. seed + repeats`` where not stored yet; returns
    how many were trained. ``on_trained(trial, seed, accuracy, done, total)`` after each."""
    done_before = repeats_of(study)
    spec = study_spec(study, settings)
    num_classes = [t.num_classes for t in tasks]
    todo = [
        (trial, seed)
        for trial in repeat_targets(study)
        for seed in range(settings.seed + 1, settings.seed + 1 + repeats)
        if seed not in done_before.get(trial.number, {})
    ]
    verdicts: dict[tuple[object, ...], bool] = {}  # --execution auto: timed once for all the repeats
    for i, (trial, seed) in enumerate(todo, start=1):
        strategy = trial.user_attrs.get(STRATEGY, SEARCH)
        candidate = Candidate.create(spec, num_classes, trial_allocation(trial), settings.granularity, strategy=strategy)  # type: ignore[arg-type]
        evaluator = TrainingEvaluator(dataclasses.replace(settings, early_stop=None), tasks, device, execution, seed=seed, verdicts=verdicts)
        result = evaluator(candidate)
        study._storage.set_study_system_attr(
            study._study_id, f"{REPEAT_PREFIX}{trial.number}:{seed}", {"accuracy": result.accuracy, "task_accuracy": result.task_accuracy}
        )
        if on_trained is not None:
            on_trained(trial.number, seed, result.accuracy, i, len(todo))
    return len(todo)
