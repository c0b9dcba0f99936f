"""The read side's data: a study's trials as a pandas frame, its Pareto front, and what the
seed noise says about them. Data only (``_figures`` draws it, ``_report`` writes it).

Every trial is read through the trial schema (``TrialRecord``); the ``--repeats`` results are
read from the study's system attributes (``REPEAT_PREFIX``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from mtlsearch._schema import REPEAT_PREFIX, records
from mtlsearch._settings import Settings
from mtlsearch._study import stored_settings, study_spec
from mtlsearch.models import BASELINES, BackboneSpec, count_params

if TYPE_CHECKING:
    import optuna
    import pandas as pd

TASK_PREFIX = "acc:"
BEYOND = 2.0  # a difference is real when it exceeds this many times the noise of a difference
COLUMNS = ["trial", "state", "kind", "strategy", "accuracy", "params", "specific_fraction", "feasible", "pareto", "train_seconds", "allocation"]


def repeats_of(study: optuna.Study) -> dict[int, dict[int, float]]:
    """``trial -> seed -> mean val accuracy`` of every stored repeat."""
    out: dict[int, dict[int, float]] = {}
    for key, value in study._storage.get_study_system_attrs(study._study_id).items():
        if key.startswith(REPEAT_PREFIX):
            trial, seed = (int(v) for v in key.removeprefix(REPEAT_PREFIX).split(":"))
            out.setdefault(trial, {})[seed] = float(value["accuracy"])
    return out


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trained, stopped or over-budget trial (a reused result is the same model as
    an earlier trial: one point, not two): strategy, accuracy, params, feasibility, front,
    per-task accuracy, and the spread over seeds of the ones ``--repeats`` retrained."""
    import pandas as pd

    front = {t.number for t in study.best_trials if "reused_from" not in t.user_attrs}
    repeats = repeats_of(study)
    rows = []
    for record in records(study.get_trials(deepcopy=False)):
        if record.kind not in ("trained", "stopped", "infeasible"):
            continue
        row = {
            "trial": record.number, "state": record.state, "kind": record.kind, "strategy": record.strategy,
            "accuracy": float("nan") if record.accuracy is None else record.accuracy, "params": record.params,
            "specific_fraction": record.specific_fraction, "feasible": record.feasible is not False,
            "pareto": record.number in front, "train_seconds": record.train_seconds, "allocation": dict(record.allocation),
        }  # fmt: skip
        if record.number in repeats and record.accuracy is not None:  # --repeats: the same candidate with other seeds
            row["seeds"], row["accuracy_mean"], row["accuracy_std"] = spread(record.accuracy, repeats[record.number])
        row.update({TASK_PREFIX + k: v for k, v in record.task_accuracy.items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else COLUMNS)


class ParetoInfo(NamedTuple):
    trained: pd.DataFrame  # feasible, trained trials
    front: pd.DataFrame  # the Pareto front among them, by params
    baselines: pd.DataFrame  # one row per baseline strategy trained
    infeasible: pd.DataFrame  # over budget, never trained
    budget_params: float | None  # parameter count at which the budget is spent


def pareto_info(study: optuna.Study, frame: pd.DataFrame | None = None) -> ParetoInfo:
    frame = trials_frame(study) if frame is None else frame
    trained = frame[frame["kind"] == "trained"] if len(frame) else frame
    infeasible = frame[frame["kind"] == "infeasible"] if len(frame) else frame
    front = trained[trained["pareto"]].sort_values("params") if len(trained) else trained
    baselines = trained[trained["strategy"].isin(BASELINES)].drop_duplicates("strategy") if len(trained) else trained
    settings = stored_settings(study)
    budget_params = None
    if settings is not None and settings.num_classes:
        budget_params = reference_params(settings, study_spec(study, settings))[1]
    return ParetoInfo(trained, front, baselines, infeasible, budget_params)


def reference_params(settings: Settings, spec: BackboneSpec) -> tuple[float, float]:
    """``(shared, at the budget)``: the parameter counts every feasible candidate lies between.

    A task-specific filter is counted once per task instead of once, so the total grows by
    ``(tasks - 1) x specific conv weights``; at the budget those are ``budget x conv weights``.
    """
    shared = count_params(spec, settings.num_classes, {}, settings.granularity).total  # type: ignore[arg-type]
    return float(shared), float(shared + (len(settings.num_classes) - 1) * settings.budget * spec.conv_params)


def summary_table(info: ParetoInfo, *, limit: int = 8) -> pd.DataFrame:
    """The baselines and the best searched candidates (front marked), best accuracy first."""
    import pandas as pd

    searched = info.trained[~info.trained["strategy"].isin(BASELINES)].nlargest(limit, "accuracy")
    table = pd.concat([info.baselines, searched]).sort_values("accuracy", ascending=False)
    task_cols = [c for c in table.columns if c.startswith(TASK_PREFIX)]
    spread_cols = ["seeds", "accuracy_mean", "accuracy_std"] if "seeds" in table.columns and table["seeds"].notna().any() else []
    return table[["trial", "strategy", "params", "specific_fraction", "accuracy", *spread_cols, *task_cols, "pareto"]]


def repeated_rows(info: ParetoInfo) -> list[dict]:
    """Trained trials with ``--repeats`` results: their mean and spread over seeds."""
    if "seeds" not in info.trained.columns:
        return []
    return info.trained[info.trained["seeds"].notna()].to_dict("records")


def result_notes(study: optuna.Study, info: ParetoInfo) -> list[str]:
    """What the numbers say against the noise: the verdict on the winner (when the noise is
    known: measured for the preset, or by ``--repeats``), and what the repeats found."""
    if len(info.trained) < 2:
        return []
    rows = repeated_rows(info)
    settings = stored_settings(study)
    said = verdict(info.trained.to_dict("records"), settings, rows) if settings is not None else None
    notes = noise_notes(rows) if rows else []
    if said is not None:
        return [said, *notes]
    return notes or noise_notes([])


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
            "Each accuracy comes from one training seed; differences smaller than the seed noise are not real, and this "
            "study's noise is unmeasured: rerun with --repeats 2 to measure it for its front."
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


def difference_noise(settings: Settings, rows: Sequence[dict]) -> tuple[float, str] | None:
    """The std of the difference in mean accuracy between two candidates, and where it comes
    from: this study's repeats (sqrt 2 x their mean std over seeds), else the preset's
    measurement (``noise`` in the preset, kept only for the setting it was measured at)."""
    if rows:
        return math.sqrt(2) * statistics.fmean(r["accuracy_std"] for r in rows), f"from this study's --repeats over {int(rows[0]['seeds'])} seeds"
    if settings.noise is not None:
        return settings.noise, f"measured for preset {settings.preset}, docs/search-quality.md"
    return None


def verdict(trained: Sequence[dict], settings: Settings, rows: Sequence[dict]) -> str | None:
    """One sentence on the winner against the noise. ``trained``: the study's trained candidates
    (``trial``, ``strategy``, ``accuracy``); ``rows``: the repeated ones (``noise_notes``)."""
    noise = difference_noise(settings, rows)
    shared = next((r for r in trained if r["strategy"] == "shared"), None)
    if noise is None or shared is None or len(trained) < 2:
        return None
    sigma, source = noise
    best = max(trained, key=lambda r: r["accuracy"])
    over_shared = best["accuracy"] - shared["accuracy"]
    times = f"{over_shared / sigma:.1f}x" if sigma > 0 else "inf x"
    said = f"the noise of a difference between two candidates is {sigma:.4f} ({source})"
    if over_shared <= BEYOND * sigma:
        return (
            f"Nothing here beats the shared model beyond the noise: the most accurate candidate, trial {best['trial']} "
            f"({best['strategy']}), is {over_shared:+.4f} over shared, {times} the noise; {said}. Task-specific filters buy nothing "
            "measurable in this study beyond per-task norms."
        )
    rivals = [r for r in trained if r["strategy"] in BASELINES and r["trial"] != best["trial"]]
    runner = max(rivals, key=lambda r: r["accuracy"]) if rivals else shared
    margin = best["accuracy"] - runner["accuracy"]
    if best["strategy"] in BASELINES:
        return (
            f"The {best['strategy']} baseline (trial {best['trial']}) is the most accurate, {over_shared:+.4f} over shared "
            f"({times}; {said}); no searched candidate beats it."
        )
    real = "beyond the noise" if margin > BEYOND * sigma else "within the noise: not a real difference"
    return (
        f"Trial {best['trial']} (search) is the most accurate: {margin:+.4f} over the best baseline, {runner['strategy']} "
        f"(trial {runner['trial']}), {margin / sigma:.1f}x the noise, {real}; {over_shared:+.4f} over shared ({times}). "
        f"({said[0].upper() + said[1:]}.)"
    )


def best_so_far(study: optuna.Study) -> tuple[float, int, str] | None:
    """``(accuracy, trial, strategy)`` of the most accurate trained trial, or None."""
    info = pareto_info(study)
    if not len(info.trained):
        return None
    top = info.trained.loc[info.trained["accuracy"].idxmax()]
    return float(top["accuracy"]), int(top["trial"]), str(top["strategy"])
