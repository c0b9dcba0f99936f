"""Seed noise on the front: ``--repeats R`` retrains the front's candidates with new seeds.

A repeat is stored on the study (system attribute ``mtlsearch:repeat:<trial>:<seed>``, one key
per result, so two processes never overwrite each other) and never becomes a trial: the
sampler learns from the search, not from the repeats. The report then shows each repeated
candidate's mean and spread, and says which differences on the front lie within the noise.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from mtlsearch._settings import Settings
from mtlsearch.models import BASELINES

if TYPE_CHECKING:
    import optuna

    from mtlsearch.datasets import Task

REPEAT_PREFIX = "mtlsearch:repeat:"
EMBEDDED_NOISE = 0.0043  # std of mean val accuracy over seeds at the default fidelity (docs/search-quality.md)


def repeats_of(study: optuna.Study) -> dict[int, dict[int, float]]:
    """``trial -> seed -> mean val accuracy`` of every stored repeat."""
    out: dict[int, dict[int, float]] = {}
    for key, value in study._storage.get_study_system_attrs(study._study_id).items():
        if key.startswith(REPEAT_PREFIX):
            trial, seed = (int(v) for v in key.removeprefix(REPEAT_PREFIX).split(":"))
            out.setdefault(trial, {})[seed] = float(value["accuracy"])
    return out


def repeat_targets(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The front's trained trials, and the bottom-specific baseline they are judged against."""
    from mtlsearch._report import pareto_info

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
    on_trained: Callable[[int, int, float, int, int], None] | None = None,
) -> int:
    """Train every target with seeds ``seed + 1 .. seed + repeats`` where not stored yet; returns
    how many were trained. ``on_trained(trial, seed, accuracy, done, total)`` after each."""
    from mtlsearch._study import study_spec, trial_allocation
    from mtlsearch._worker import _train
    from mtlsearch.models import Candidate

    done_before = repeats_of(study)
    spec = study_spec(study, settings)
    num_classes = [t.num_classes for t in tasks]
    todo = [
        (trial, seed)
        for trial in repeat_targets(study)
        for seed in range(settings.seed + 1, settings.seed + 1 + repeats)
        if seed not in done_before.get(trial.number, {})
    ]
    for i, (trial, seed) in enumerate(todo, start=1):
        strategy = trial.user_attrs.get("strategy", "search")
        candidate = Candidate.create(spec, num_classes, trial_allocation(trial), settings.granularity, strategy=strategy)  # type: ignore[arg-type]
        result = _train(candidate, dataclasses.replace(settings, seed=seed, early_stop=None), tasks, device, None)
        study._storage.set_study_system_attr(
            study._study_id, f"{REPEAT_PREFIX}{trial.number}:{seed}", {"accuracy": result.accuracy, "task_accuracy": result.task_accuracy}
        )
        if on_trained is not None:
            on_trained(trial.number, seed, result.accuracy, i, len(todo))
    return len(todo)


class Spread(NamedTuple):
    seeds: int
    mean: float
    std: float


def spread(first: float, repeats: dict[int, float]) -> Spread:
    """Mean and sample standard deviation over the trial's own seed and its repeats."""
    values = [first, *repeats.values()]
    return Spread(len(values), statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def noise_notes(rows: Sequence[dict]) -> list[str]:
    """What the repeats say, one sentence each. ``rows``: repeated trials with ``trial``,
    ``strategy``, ``accuracy_mean``, ``accuracy_std``, ``params`` and ``pareto``."""
    if not rows:
        return [
            "Each accuracy comes from one training seed; differences smaller than the seed noise are not real "
            f"(on the embedded benchmark the noise is {EMBEDDED_NOISE:.4f} in mean accuracy: docs/search-quality.md). "
            "Rerun with --repeats 2 to measure it for this study's front."
        ]
    noise = statistics.fmean(r["accuracy_std"] for r in rows)
    notes = [f"Seed noise: the standard deviation of mean accuracy over {int(rows[0]['seeds'])} seeds is {noise:.4f} on average."]
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["params"])
    close = [
        f"trial {a['trial']} and trial {b['trial']} ({b['accuracy_mean'] - a['accuracy_mean']:+.4f})"
        for a, b in zip(front, front[1:])
        if abs(b["accuracy_mean"] - a["accuracy_mean"]) <= a["accuracy_std"] + b["accuracy_std"]
    ]
    if close:
        notes.append("Within the noise on the front: " + "; ".join(close) + ". Their order may change with another seed.")
    bottom = next((r for r in rows if r["strategy"] == "bottom-specific"), None)
    searched = [r for r in rows if r["strategy"] not in BASELINES]
    if bottom is not None and searched:
        best = max(searched, key=lambda r: r["accuracy_mean"])
        gap = best["accuracy_mean"] - bottom["accuracy_mean"]
        beyond = abs(gap) > best["accuracy_std"] + bottom["accuracy_std"]
        verdict = "beyond the noise" if beyond else "within the noise: not a real difference"
        notes.append(
            f"Best searched candidate (trial {best['trial']}) vs bottom-specific (trial {bottom['trial']}): "
            f"{gap:+.4f} in mean accuracy over seeds, {verdict}."
        )
    return notes
