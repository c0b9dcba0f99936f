"""The worker loop: ask -> candidate -> count (no training) -> constraint -> train -> tell."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mtlsearch._settings import Settings
from mtlsearch._study import CONSTRAINTS_KEY, space_for
from mtlsearch._train import Probe, StepCallback, TrainResult, resolve_device, train_candidate
from mtlsearch.models import Candidate, backbone_spec

if TYPE_CHECKING:
    import optuna

    from mtlsearch.datasets import Task

MAX_INFEASIBLE_IN_A_ROW = 2000  # then the sampler is stuck outside the budget (random search at budget 0.1: 1 in 60 fits)
TRAINING_ATTR = "mtlsearch:training"  # system attribute: this RUNNING trial is being trained
KEY_ATTR = "mtlsearch:key"  # system attribute: the candidate's filter counts (Candidate.key)
REUSED_ATTR = "reused_from"  # user attribute: the earlier trial whose result this one repeats
STOPPED_ATTR = "stopped_early"  # user attribute of a PRUNED, feasible trial that the early-stopping rule ended
PROBE_ATTR = "probe_accuracy"  # user attribute: mean val accuracy at a third of the steps (with --early-stop)
MIN_PROBED = 4  # finished trials with a probe before the rule stops anything (the baselines)
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"  # user attribute "worker": who ran the trial
FEASIBLE_TOLERANCE = 1e-12  # float noise in the specific fraction, far below one filter


class Callbacks:
    """What a worker reports; the CLI draws it. Every method may be left as it is."""

    def trial_started(self, number: int, candidate: Candidate, trained: int, target: int) -> None: ...

    def trial_finished(self, trial: optuna.trial.FrozenTrial, result: TrainResult) -> None: ...

    def trial_infeasible(self, number: int, candidate: Candidate) -> None: ...

    def trial_reused(self, number: int, earlier: int) -> None: ...

    def trial_stopped(self, number: int, result: TrainResult, median: float) -> None: ...

    def waiting(self, in_flight: int) -> None: ...

    def storage_wait(self, reason: str, delay: float) -> None: ...

    on_step: StepCallback | None = None


@dataclass
class WorkerSummary:
    trained: list[int] = field(default_factory=list)
    infeasible: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)  # ended early by the --early-stop rule
    lost: list[int] = field(default_factory=list)  # failed by others while this worker trained them
    stopped_by: str = "target"


@dataclass(frozen=True)
class Liveness:
    """A worker's heartbeat interval and its patience with an unreachable storage."""

    heartbeat_interval: float = 10.0
    patience: float = 300.0
    poll: float = 2.0  # seconds between looks at the study while others finish the last trials


def _counts(study: optuna.Study) -> tuple[int, int]:
    """``(trained, in_flight)``: trials trained (to completion, or until the early-stopping rule
    ended them), and trials being trained now."""
    from optuna.trial import TrialState

    trained = in_flight = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED)):
        if t.state == TrialState.COMPLETE:
            trained += REUSED_ATTR not in t.user_attrs
        elif t.state == TrialState.PRUNED:
            trained += STOPPED_ATTR in t.user_attrs
        else:
            in_flight += bool(t.system_attrs.get(TRAINING_ATTR))
    return trained, in_flight


def trained_count(study: optuna.Study) -> int:
    """Trials trained to completion; reused results do not count."""
    return _counts(study)[0]


def _earlier_result(study: optuna.Study, key: str) -> optuna.trial.FrozenTrial | None:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.system_attrs.get(KEY_ATTR) == key and REUSED_ATTR not in t.user_attrs:
            return t
    return None


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
    trial.set_user_attr("worker", WORKER_ID)
    study._storage.set_trial_system_attr(trial._trial_id, KEY_ATTR, candidate.key)
    _set_constraint(study, trial, candidate.violation(settings.budget))
    return candidate


class EarlyStop:
    """The opt-in rule (``--early-stop MARGIN``). Optuna cannot prune multi-objective trials, so
    mtlsearch does it itself: a candidate whose mean val accuracy at a third of its steps lies
    more than MARGIN below the median of the finished trials at that point is stopped there.
    Nothing is stopped before ``MIN_PROBED`` finished trials have been probed."""

    def __init__(self, study: optuna.Study, margin: float) -> None:
        self.study, self.margin = study, margin
        self.median: float | None = None

    def __call__(self, accuracy: float) -> bool:
        import statistics

        from optuna.trial import TrialState

        probed = [
            t.user_attrs[PROBE_ATTR]
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if PROBE_ATTR in t.user_attrs and REUSED_ATTR not in t.user_attrs
        ]
        if len(probed) < MIN_PROBED:
            return False
        self.median = statistics.median(probed)
        return accuracy < self.median - self.margin


def _train(
    candidate: Candidate, settings: Settings, tasks: Sequence[Task], device: str, on_step: StepCallback | None, probe: Probe | None = None
) -> TrainResult:
    import torch

    from mtlsearch.models import build_model

    torch.manual_seed(settings.seed)  # every candidate starts from the same backbone
    model = build_model(
        settings.backbone,
        num_classes=[t.num_classes for t in tasks],
        allocation=candidate.allocation_dict,
        granularity=settings.granularity,  # type: ignore[arg-type]
        pretrained=settings.pretrained,
        weights=Path(settings.weights) if settings.weights else None,
    )
    return train_candidate(model, tasks, settings.fidelity, device=device, seed=settings.seed, on_step=on_step, probe=probe)


def run_worker(
    study: optuna.Study,
    settings: Settings,
    tasks: Sequence[Task],
    *,
    n_trials: int,
    timeout: float | None = None,
    device: str = "auto",
    callbacks: Callbacks | None = None,
    liveness: Liveness | None = None,
) -> WorkerSummary:
    """Train candidates until the study holds ``n_trials`` trained trials or time runs out.

    Safe to run in many processes on one study. A worker starts a trial only while trained plus
    in-flight trials are short of the target, and waits for in-flight ones otherwise, so the
    study ends with exactly ``n_trials`` (or up to K - 1 more when K workers race to the last
    one). Over-budget candidates are recorded (PRUNED, constraint > 0) and never trained; an
    allocation already trained is recorded with the earlier result (``reused_from``). With
    ``settings.early_stop``, a candidate the rule stops is PRUNED (feasible) with
    ``stopped_early`` and counts as trained. On
    Ctrl-C the running trial is failed, its allocation re-enqueued, and ``KeyboardInterrupt``
    raised.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from mtlsearch._liveness import Beats, Patience, fail_stale

    callbacks = callbacks or Callbacks()
    liveness = liveness or Liveness()
    patience = Patience(liveness.patience, callbacks.storage_wait)
    device = resolve_device(device)
    num_classes = [t.num_classes for t in tasks]
    early_stop = EarlyStop(study, settings.early_stop) if settings.early_stop is not None else None
    summary = WorkerSummary()
    started = time.monotonic()
    infeasible_in_a_row = 0
    while True:
        patience.call("looking for silent workers", lambda: fail_stale(study))
        trained, in_flight = patience.call("counting trials", lambda: _counts(study))
        if trained >= n_trials:
            break
        if timeout is not None and time.monotonic() - started >= timeout:
            summary.stopped_by = "timeout"
            break
        if trained + in_flight >= n_trials:  # the last trials are being trained elsewhere
            callbacks.waiting(in_flight)
            time.sleep(liveness.poll)
            continue
        trial = patience.call("asking for a candidate", study.ask)
        strategy = trial.user_attrs.get("strategy", "search")
        outcome: object = None
        try:
            with Beats(study._storage, trial._trial_id, liveness.heartbeat_interval):
                candidate = patience.call(
                    "recording a candidate", lambda: _propose(study, trial, settings, num_classes, strategy)
                )
                if candidate.violation(settings.budget) > FEASIBLE_TOLERANCE:
                    outcome = "infeasible"
                elif (earlier := patience.call("looking for the same allocation", lambda: _earlier_result(study, candidate.key))) is not None:
                    outcome = earlier
                else:
                    patience.call("marking the trial", lambda: study._storage.set_trial_system_attr(trial._trial_id, TRAINING_ATTR, True))
                    callbacks.trial_started(trial.number, candidate, trained, n_trials)
                    outcome = _train(candidate, settings, tasks, device, callbacks.on_step, early_stop)
        except KeyboardInterrupt:
            _tell(study, patience, trial, state=TrialState.FAIL)
            if trial.params:  # the same allocation is trained on the next run
                study.enqueue_trial(trial.params, user_attrs={"strategy": strategy, "retry_of": trial.number})
            raise
        except UpdateFinishedTrialError:  # failed by another worker after a silence: retried there
            summary.lost.append(trial.number)
            continue
        except FloatingPointError as exc:
            trial.set_user_attr("error", str(exc))
            _tell(study, patience, trial, state=TrialState.FAIL)
            summary.failed.append(trial.number)
            continue
        except BaseException:
            _tell(study, patience, trial, state=TrialState.FAIL)
            raise
        if outcome == "infeasible":
            _tell(study, patience, trial, state=TrialState.PRUNED)
            summary.infeasible.append(trial.number)
            callbacks.trial_infeasible(trial.number, candidate)
            infeasible_in_a_row += 1
            if infeasible_in_a_row >= MAX_INFEASIBLE_IN_A_ROW:
                from mtlsearch.errors import SamplerStalledError

                raise SamplerStalledError(
                    f"the {settings.sampler} sampler proposed {infeasible_in_a_row} over-budget candidates in a row: it does not learn "
                    "the budget from proposals that are never trained; use --sampler tpe (docs/search-quality.md)"
                )
            continue
        infeasible_in_a_row = 0
        if isinstance(outcome, TrainResult):
            attrs = {
                "task_accuracy": outcome.task_accuracy,
                "train_seconds": outcome.train_seconds,
                "images_per_second": outcome.images_per_second,
                "device": device,
                "execution": outcome.execution,
                "seed": settings.seed,
            }
            values = [outcome.accuracy, float(candidate.counts.total)]
            if outcome.probe_accuracy is not None:
                attrs[PROBE_ATTR] = outcome.probe_accuracy
            if outcome.stopped_at is not None and early_stop is not None:
                attrs[STOPPED_ATTR] = {"step": outcome.stopped_at, "median": early_stop.median, "margin": early_stop.margin}
                if _tell(study, patience, trial, state=TrialState.PRUNED, attrs=attrs) is None:
                    summary.lost.append(trial.number)
                else:
                    summary.stopped.append(trial.number)
                    callbacks.trial_stopped(trial.number, outcome, early_stop.median or 0.0)
                continue
        else:
            earlier = outcome  # type: ignore[assignment]
            keep = ("task_accuracy", "train_seconds", "images_per_second", "device", "execution", "seed")
            attrs = {k: earlier.user_attrs[k] for k in keep if k in earlier.user_attrs} | {REUSED_ATTR: earlier.number}
            values = list(earlier.values)
        frozen = _tell(study, patience, trial, values=values, attrs=attrs)
        if frozen is None:
            summary.lost.append(trial.number)
        elif isinstance(outcome, TrainResult):
            summary.trained.append(trial.number)
            callbacks.trial_finished(frozen, outcome)
        else:
            summary.reused.append(trial.number)
            callbacks.trial_reused(trial.number, earlier.number)
    return summary


def _tell(
    study: optuna.Study,
    patience: object,
    trial: optuna.Trial,
    *,
    values: list[float] | None = None,
    state: optuna.trial.TrialState | None = None,
    attrs: dict[str, object] | None = None,
) -> optuna.trial.FrozenTrial | None:
    """Finish a trial, through a storage outage. ``None`` when another worker already failed it
    (its heartbeat went silent for longer than the grace period)."""
    import optuna

    def tell() -> optuna.trial.FrozenTrial:
        for key, value in (attrs or {}).items():
            trial.set_user_attr(key, value)
        return study.tell(trial, values, state=state)

    try:
        return patience.call("recording a result", tell)  # type: ignore[attr-defined]
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    except ValueError as exc:  # "Cannot tell a FAIL trial."
        if str(exc).startswith("Cannot tell a"):
            return None
        raise
