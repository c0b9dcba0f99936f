"""The worker loop: ask -> candidate -> count (no training) -> constraint -> train -> tell."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mtlsearch._settings import Settings
from mtlsearch._study import CONSTRAINTS_KEY, space_for
from mtlsearch._train import StepCallback, TrainResult, resolve_device, train_candidate
from mtlsearch.models import Candidate, backbone_spec

if TYPE_CHECKING:
    import optuna

    from mtlsearch.datasets import Task

MAX_INFEASIBLE_IN_A_ROW = 2000
FEASIBLE_TOLERANCE = 1e-12  # float noise in the specific fraction, far below one filter


class Callbacks:
    """What a worker reports; the CLI draws it. Every method may be left as it is."""

    def trial_started(self, number: int, candidate: Candidate, trained: int, target: int) -> None: ...

    def trial_finished(self, trial: optuna.trial.FrozenTrial, result: TrainResult) -> None: ...

    def trial_infeasible(self, number: int, candidate: Candidate) -> None: ...

    on_step: StepCallback | None = None


@dataclass
class WorkerSummary:
    trained: list[int] = field(default_factory=list)
    infeasible: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    stopped_by: str = "target"


def trained_count(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _set_constraint(study: optuna.Study, trial: optuna.Trial, value: float) -> None:
    study._storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_KEY, [value])


def _propose(
    study: optuna.Study, trial: optuna.Trial, settings: Settings, num_classes: Sequence[int], strategy: str
) -> Candidate:
    """The trial's candidate, counted without a model; its attributes and constraint recorded."""
    allocation = space_for(settings).suggest(trial)
    spec = backbone_spec(settings.backbone)
    candidate = Candidate.create(spec, num_classes, allocation, settings.granularity, strategy=strategy)  # type: ignore[arg-type]
    trial.set_user_attr("strategy", strategy)
    trial.set_user_attr("allocation", candidate.allocation_dict)
    trial.set_user_attr("specific_fraction", candidate.specific_fraction)
    trial.set_user_attr("params", candidate.counts.total)
    _set_constraint(study, trial, candidate.violation(settings.budget))
    return candidate


def _train(candidate: Candidate, settings: Settings, tasks: Sequence[Task], device: str, on_step: StepCallback | None) -> TrainResult:
    import torch

    from mtlsearch.models import build_model

    torch.manual_seed(settings.seed)  # every candidate starts from the same backbone
    model = build_model(
        settings.backbone,
        num_classes=[t.num_classes for t in tasks],
        allocation=candidate.allocation_dict,
        granularity=settings.granularity,  # type: ignore[arg-type]
    )
    return train_candidate(model, tasks, settings.fidelity, device=device, seed=settings.seed, on_step=on_step)


def run_worker(
    study: optuna.Study,
    settings: Settings,
    tasks: Sequence[Task],
    *,
    n_trials: int,
    timeout: float | None = None,
    device: str = "auto",
    callbacks: Callbacks | None = None,
) -> WorkerSummary:
    """Train candidates until the study holds ``n_trials`` trained trials or time runs out.

    Over-budget candidates are recorded (PRUNED, constraint > 0) and never trained. On Ctrl-C
    the running trial is failed, its allocation re-enqueued, and ``KeyboardInterrupt`` raised.
    """
    from optuna.trial import TrialState

    callbacks = callbacks or Callbacks()
    device = resolve_device(device)
    num_classes = [t.num_classes for t in tasks]
    summary = WorkerSummary()
    started = time.monotonic()
    infeasible_in_a_row = 0
    while True:
        trained = trained_count(study)
        if trained >= n_trials:
            break
        if timeout is not None and time.monotonic() - started >= timeout:
            summary.stopped_by = "timeout"
            break
        trial = study.ask()
        strategy = trial.user_attrs.get("strategy", "search")
        try:
            candidate = _propose(study, trial, settings, num_classes, strategy)
            feasible = candidate.violation(settings.budget) <= FEASIBLE_TOLERANCE
            if feasible:
                callbacks.trial_started(trial.number, candidate, trained, n_trials)
                result = _train(candidate, settings, tasks, device, callbacks.on_step)
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL)
            if trial.params:  # the same allocation is trained on the next run
                study.enqueue_trial(trial.params, user_attrs={"strategy": strategy, "retry_of": trial.number})
            raise
        except FloatingPointError as exc:
            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=TrialState.FAIL)
            summary.failed.append(trial.number)
            continue
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        if not feasible:
            study.tell(trial, state=TrialState.PRUNED)
            summary.infeasible.append(trial.number)
            callbacks.trial_infeasible(trial.number, candidate)
            infeasible_in_a_row += 1
            if infeasible_in_a_row >= MAX_INFEASIBLE_IN_A_ROW:
                raise RuntimeError(f"the sampler proposed {infeasible_in_a_row} over-budget candidates in a row")
            continue
        infeasible_in_a_row = 0
        trial.set_user_attr("task_accuracy", result.task_accuracy)
        trial.set_user_attr("train_seconds", result.train_seconds)
        trial.set_user_attr("images_per_second", result.images_per_second)
        trial.set_user_attr("device", device)
        trial.set_user_attr("seed", settings.seed)
        frozen = study.tell(trial, [result.accuracy, float(candidate.counts.total)])
        summary.trained.append(trial.number)
        callbacks.trial_finished(frozen, result)
    return summary
