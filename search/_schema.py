"""The trial schema: every key mtlsearch stores on a study or a trial, named once, and one
frozen record read from a trial that says what kind of trial it is.

The worker writes through these names; every reader (the report, the figures, export,
``studies``, ``show``, the worker's own count towards its target, the benchmarks) classifies a
trial with ``TrialRecord.kind`` and counts with ``Counts``, so they cannot disagree.

Kinds:

- ``trained``: COMPLETE, trained by a worker (the study's objectives are its values);
- ``stopped``: PRUNED by the opt-in early-stopping rule part-way through training (feasible;
  counts towards the target like a trained trial, has no values);
- ``reused``: COMPLETE with the values of an earlier trial of the same allocation (not trained,
  not counted, not a second point);
- ``infeasible``: PRUNED over budget, never trained (no study of the current search space has
  one: every proposal fits the budget);
- ``failed``, ``running``, ``waiting``: as Optuna says (waiting: enqueued, not started).
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import optuna

# study user attributes
SETTINGS_ATTR = "settings"  # Settings.to_dict(): everything that defines the search
TARGET_ATTR = "n_trials"  # the study-wide target of trained trials that workers work towards
# study system attributes
SHAPES_ATTR = "mtlsearch:shape_table"  # the backbone's BackboneSpec, so readers need no torch
SPACE_ATTR = "mtlsearch:space"  # the search space's version (BudgetSpace)
DATA_ATTR = "mtlsearch:data_digest"  # an embedded benchmark's file digest (embedded_digest), when the study trains on one
REPEAT_PREFIX = "mtlsearch:repeat:"  # + "<trial>:<seed>": one --repeats result per key

# trial user attributes (DESIGN.md's study contract, and mtlsearch's own)
STRATEGY = "strategy"
ALLOCATION = "allocation"
SPECIFIC_FRACTION = "specific_fraction"
PARAMS = "params"
WORKER = "worker"
TASK_ACCURACY = "task_accuracy"
TRAIN_SECONDS = "train_seconds"
IMAGES_PER_SECOND = "images_per_second"
DEVICE = "device"
EXECUTION = "execution"
SEED = "seed"
PROBE_ACCURACY = "probe_accuracy"  # mean val accuracy at a third of the steps (with --early-stop)
STOPPED_EARLY = "stopped_early"  # {"step", "median", "margin"} of a trial the rule ended
REUSED_FROM = "reused_from"  # the earlier trial whose result this one repeats
RETRY_OF = "retry_of"  # the interrupted trial this one retries
ERROR = "error"  # why training failed
# the result attributes a reused trial copies from the trial it repeats
RESULT_ATTRS = (TASK_ACCURACY, TRAIN_SECONDS, IMAGES_PER_SECOND, DEVICE, EXECUTION, SEED)

# trial system attributes
CONSTRAINTS = "constraints"  # [specific_fraction - budget]: Optuna's samplers and optuna-dashboard read it
TRAINING = "mtlsearch:training"  # set while a worker trains this RUNNING trial
KEY = "mtlsearch:key"  # the candidate's filter counts (Candidate.key): equal keys, equal models
BEAT = "mtlsearch:beat"  # the heartbeat counter behind the gRPC proxy
FAILED_TRIAL = "failed_trial"  # Optuna's retry callback: the silent trial this one retries

SEARCH = "search"  # the strategy of a proposal of the sampler
FEASIBLE_TOLERANCE = 1e-12  # float noise in the specific fraction, far below one filter

Kind = Literal["trained", "stopped", "reused", "infeasible", "failed", "running", "waiting"]
KINDS: tuple[Kind, ...] = ("trained", "stopped", "reused", "infeasible", "failed", "running", "waiting")


def kind_of(state: str, user_attrs: Mapping[str, Any]) -> Kind:
    """What a trial is, from its state name and user attributes."""
    if state == "COMPLETE":
        return "reused" if REUSED_FROM in user_attrs else "trained"
    if state == "PRUNED":
        return "stopped" if STOPPED_EARLY in user_attrs else "infeasible"
    return {"FAIL": "failed", "RUNNING": "running"}.get(state, "waiting")  # type: ignore[return-value]


@dataclass(frozen=True)
class TrialRecord:
    """One trial as mtlsearch stored it."""

    number: int
    state: str  # Optuna's state name
    kind: Kind
    strategy: str
    allocation: Mapping[str, float]
    accuracy: float | None  # mean val accuracy (the first objective); None without values
    params: int | None  # the second objective (known once proposed)
    specific_fraction: float | None
    constraint: float | None
    task_accuracy: Mapping[str, float] = field(default_factory=dict)
    train_seconds: float | None = None
    images_per_second: float | None = None
    device: str | None = None
    execution: str | None = None
    seed: int | None = None
    worker: str | None = None
    reused_from: int | None = None
    retry_of: int | None = None
    stopped_at: int | None = None  # the step the early-stopping rule stopped it at
    probe_accuracy: float | None = None
    error: str | None = None
    training: bool = False  # a RUNNING trial a worker is training now
    key: str | None = None
    datetime_start: _dt.datetime | None = None
    datetime_complete: _dt.datetime | None = None

    @property
    def feasible(self) -> bool | None:
        return None if self.constraint is None else self.constraint <= FEASIBLE_TOLERANCE

    @property
    def counts_as_trained(self) -> bool:
        """Towards the study's target: trained to the end, or until the early-stopping rule."""
        return self.kind in ("trained", "stopped")

    @classmethod
    def from_frozen(cls, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        attrs, system = trial.user_attrs, trial.system_attrs
        constraint = (system.get(CONSTRAINTS) or [None])[0]
        return cls(
            number=trial.number,
            state=trial.state.name,
            kind=kind_of(trial.state.name, attrs),
            strategy=attrs.get(STRATEGY, SEARCH),
            allocation=dict(attrs.get(ALLOCATION) or {}),
            accuracy=trial.values[0] if trial.values else None,
            params=int(trial.values[1]) if trial.values else attrs.get(PARAMS),
            specific_fraction=attrs.get(SPECIFIC_FRACTION),
            constraint=constraint,
            task_accuracy=dict(attrs.get(TASK_ACCURACY) or {}),
            train_seconds=attrs.get(TRAIN_SECONDS),
            images_per_second=attrs.get(IMAGES_PER_SECOND),
            device=attrs.get(DEVICE),
            execution=attrs.get(EXECUTION),
            seed=attrs.get(SEED),
            worker=attrs.get(WORKER),
            reused_from=attrs.get(REUSED_FROM),
            retry_of=attrs.get(RETRY_OF, system.get(FAILED_TRIAL)),
            stopped_at=(attrs.get(STOPPED_EARLY) or {}).get("step"),
            probe_accuracy=attrs.get(PROBE_ACCURACY),
            error=attrs.get(ERROR),
            training=bool(system.get(TRAINING)),
            key=system.get(KEY),
            datetime_start=trial.datetime_start,
            datetime_complete=trial.datetime_complete,
        )


def records(trials: Iterable[optuna.trial.FrozenTrial]) -> list[TrialRecord]:
    return [TrialRecord.from_frozen(t) for t in trials]


@dataclass(frozen=True)
class Counts:
    """How many trials of each kind a study holds; ``trained`` is what its target counts."""

    by_kind: Mapping[str, int]
    training: int = 0  # running trials that a worker is training now (not merely proposing)

    @classmethod
    def of(cls, trials: Iterable[TrialRecord]) -> Counts:
        trials = list(trials)
        found = Counter(t.kind for t in trials)
        return cls({k: found.get(k, 0) for k in KINDS}, sum(t.kind == "running" and t.training for t in trials))

    @property
    def trained(self) -> int:
        """Trained to the end or stopped early by the rule: what ``--n-trials`` counts."""
        return self.by_kind["trained"] + self.by_kind["stopped"]

    def __getitem__(self, kind: str) -> int:
        return self.by_kind[kind]
