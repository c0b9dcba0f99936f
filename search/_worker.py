"""The worker: a loop over trials (target, timeout, waiting, stalls) and one trial at a time
(ask -> candidate -> count, no training -> constraint -> evaluate -> tell).

The loop is Optuna's ``optimize`` shaped for many processes on one study: it knows nothing of
how a candidate is scored; ``run_trial`` does one trial with the evaluator it is given.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from mtlsearch import _schema as S
from mtlsearch._evaluate import Evaluator
from mtlsearch._liveness import Beats, Patience, fail_stale
from mtlsearch._schema import Counts, records
from mtlsearch._settings import Settings
from mtlsearch._study import space_for, study_spec
from mtlsearch._train import StepCallback, TrainResult
from mtlsearch.errors import SearchStalledError, StorageUnavailableError, TrainingDivergedError
from mtlsearch.models import Candidate

if TYPE_CHECKING:
    import optuna

MIN_PROBED = 4  # finished trials with a probe before the early-stopping rule stops anything (the baselines)
MAX_FAILED_IN_A_ROW = 3  # trials whose training diverged, one after another: then the worker stops
EXPLORE_AFTER_REUSED = 20  # proposals of allocations trained before, in a row: then the next ones are drawn at random
MAX_REUSED_IN_A_ROW = 200  # ... and if even random proposals were all trained before: the space is exhausted
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"  # user attribute "worker": who ran the trial
STOP_PATIENCE_S = 10.0  # how long a stopping worker tries to fail its trial through an outage


class StoppedDuringOutage(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while the storage was unreachable: the running trial could not be
    failed now; the heartbeat of the others fails and retries it after the grace period."""

    def __init__(self, trial: int) -> None:
        super().__init__(trial)
        self.trial = trial


class Callbacks:
    """What a worker reports; the CLI draws it. Every method may be left as it is."""

    def trial_started(self, number: int, candidate: Candidate, trained: int, target: int) -> None: ...

    def trial_finished(self, trial: optuna.trial.FrozenTrial, result: TrainResult) -> None: ...

    def trial_infeasible(self, number: int, candidate: Candidate) -> None: ...

    def trial_reused(self, number: int, earlier: int) -> None: ...

    def trial_stopped(self, number: int, result: TrainResult, median: float) -> None: ...

    def trial_failed(self, number: int, error: str) -> None: ...

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


def study_counts(study: optuna.Study) -> Counts:
    """Every trial of the study by kind (``_schema``): what the worker's target, ``studies``,
    the report and ``export`` all count with."""
    return Counts.of(records(study.get_trials(deepcopy=False)))


def trained_count(study: optuna.Study) -> int:
    """Trials that count towards the target: trained, or stopped by the early-stopping rule."""
    return study_counts(study).trained


def _earlier_result(study: optuna.Study, key: str) -> optuna.trial.FrozenTrial | None:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.system_attrs.get(S.KEY) == key and S.REUSED_FROM not in t.user_attrs:
            return t
    return None


def propose(study: optuna.Study, trial: optuna.Trial, settings: Settings, strategy: str) -> Candidate:
    """The trial's candidate from the search space, counted without a model; its attributes
    and constraint recorded."""
    allocation = space_for(settings).suggest(trial)
    spec = study_spec(study, settings)
    candidate = Candidate.create(spec, settings.num_classes, allocation, settings.granularity, strategy=strategy)  # type: ignore[arg-type]
    trial.set_user_attr(S.STRATEGY, strategy)
    trial.set_user_attr(S.ALLOCATION, candidate.allocation_dict)
    trial.set_user_attr(S.SPECIFIC_FRACTION, candidate.specific_fraction)
    trial.set_user_attr(S.PARAMS, candidate.counts.total)
    trial.set_user_attr(S.WORKER, WORKER_ID)
    study._storage.set_trial_system_attr(trial._trial_id, S.KEY, candidate.key)
    study._storage.set_trial_system_attr(trial._trial_id, S.CONSTRAINTS, [candidate.violation(settings.budget)])
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
        probed = [r.probe_accuracy for r in records(self.study.get_trials(deepcopy=False)) if r.kind == "trained" and r.probe_accuracy is not None]
        if len(probed) < MIN_PROBED:
            return False
        self.median = statistics.median(probed)
        return accuracy < self.median - self.margin


OutcomeKind = Literal["trained", "stopped", "reused", "infeasible", "failed", "lost"]


@dataclass(frozen=True)
class Outcome:
    """What became of one trial."""

    kind: OutcomeKind
    number: int
    result: TrainResult | None = None
    earlier: int | None = None  # reused: the trial whose result it repeats
    error: str | None = None  # failed: why


def _result_attrs(result: TrainResult, device: str, seed: int) -> dict[str, object]:
    attrs: dict[str, object] = {
        S.TASK_ACCURACY: result.task_accuracy, S.TRAIN_SECONDS: result.train_seconds, S.IMAGES_PER_SECOND: result.images_per_second,
        S.DEVICE: device, S.EXECUTION: result.execution, S.SEED: seed,
    }  # fmt: skip
    if result.probe_accuracy is not None:
        attrs[S.PROBE_ACCURACY] = result.probe_accuracy
    return attrs


@contextlib.contextmanager
def _proposing(study: optuna.Study, random_seed: int | None) -> Iterator[None]:
    """While a trial is asked for and its parameters suggested: the study's own sampler, or
    with ``random_seed`` a random one (seeded by the trials so far, so a lone worker repeats
    itself bit for bit)."""
    import optuna

    if random_seed is None:
        yield
        return
    sampler = study.sampler
    study.sampler = optuna.samplers.RandomSampler(seed=random_seed * 1_000_003 + len(study.get_trials(deepcopy=False)))
    try:
        yield
    finally:
        study.sampler = sampler


def run_trial(
    study: optuna.Study, settings: Settings, evaluator: Evaluator, *, patience: Patience, callbacks: Callbacks,
    liveness: Liveness, trained: int, target: int, early_stop: EarlyStop | None, explore: bool = False,
) -> Outcome:  # fmt: skip
    """Ask for one trial, record its candidate, and train it (or record why not); tell the
    result. ``explore``: this proposal is drawn at random, not by the study's sampler. On
    Ctrl-C the trial is failed, its allocation enqueued again, and the interrupt raised."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    with _proposing(study, settings.seed if explore else None):
        trial = patience.call("asking for a candidate", study.ask)
    strategy = trial.user_attrs.get(S.STRATEGY, S.SEARCH)
    try:
        with Beats(study._storage, trial._trial_id, liveness.heartbeat_interval):
            with _proposing(study, settings.seed if explore else None):
                candidate = patience.call("recording a candidate", lambda: propose(study, trial, settings, strategy))
            if candidate.violation(settings.budget) > S.FEASIBLE_TOLERANCE:  # never, with the current space
                _tell(study, patience, trial, state=TrialState.PRUNED)
                callbacks.trial_infeasible(trial.number, candidate)
                return Outcome("infeasible", trial.number)
            earlier = patience.call("looking for the same allocation", lambda: _earlier_result(study, candidate.key))
            if earlier is not None:
                attrs = {k: earlier.user_attrs[k] for k in S.RESULT_ATTRS if k in earlier.user_attrs} | {S.REUSED_FROM: earlier.number}
                if _tell(study, patience, trial, values=list(earlier.values), attrs=attrs) is None:
                    return Outcome("lost", trial.number)
                callbacks.trial_reused(trial.number, earlier.number)
                return Outcome("reused", trial.number, earlier=earlier.number)
            patience.call("marking the trial", lambda: study._storage.set_trial_system_attr(trial._trial_id, S.TRAINING, True))
            callbacks.trial_started(trial.number, candidate, trained, target)
            result = evaluator(candidate, on_step=callbacks.on_step, probe=early_stop)
    except KeyboardInterrupt:
        stopping = Patience(min(STOP_PATIENCE_S, patience.seconds))  # a stop must not wait out a whole outage
        try:
            _tell(study, stopping, trial, state=TrialState.FAIL)
            if trial.params:  # the same allocation is trained on the next run
                retry = {S.STRATEGY: strategy, S.RETRY_OF: trial.number, S.ALLOCATION: trial.user_attrs.get(S.ALLOCATION)}
                stopping.call("enqueueing the retry", lambda: study.enqueue_trial(trial.params, user_attrs={k: v for k, v in retry.items() if v is not None}))
        except StorageUnavailableError:
            raise StoppedDuringOutage(trial.number) from None
        raise
    except UpdateFinishedTrialError:  # failed by another worker after a silence: retried there
        return Outcome("lost", trial.number)
    except FloatingPointError as exc:
        _tell(study, patience, trial, state=TrialState.FAIL, attrs={S.ERROR: str(exc)})
        callbacks.trial_failed(trial.number, str(exc))
        return Outcome("failed", trial.number, error=str(exc))
    except BaseException:
        _tell(study, patience, trial, state=TrialState.FAIL)
        raise
    attrs = _result_attrs(result, evaluator.device, settings.seed)
    if result.stopped_at is not None and early_stop is not None:
        attrs[S.STOPPED_EARLY] = {"step": result.stopped_at, "median": early_stop.median, "margin": early_stop.margin}
        if _tell(study, patience, trial, state=TrialState.PRUNED, attrs=attrs) is None:
            return Outcome("lost", trial.number)
        callbacks.trial_stopped(trial.number, result, early_stop.median or 0.0)
        return Outcome("stopped", trial.number, result)
    frozen = _tell(study, patience, trial, values=[result.accuracy, float(candidate.counts.total)], attrs=attrs)
    if frozen is None:
        return Outcome("lost", trial.number)
    callbacks.trial_finished(frozen, result)
    return Outcome("trained", trial.number, result)


def run_worker(
    study: optuna.Study,
    settings: Settings,
    evaluator: Evaluator,
    *,
    n_trials: int,
    timeout: float | None = None,
    callbacks: Callbacks | None = None,
    liveness: Liveness | None = None,
) -> WorkerSummary:
    """Run trials with ``evaluator`` until the study holds ``n_trials`` trained trials or time
    runs out.

    Safe to run in many processes on one study. A worker starts a trial only while trained plus
    in-flight trials are short of the target, and waits for in-flight ones otherwise, so the
    study ends with exactly ``n_trials`` (or up to K - 1 more when K workers race to the last
    one). An allocation already trained is recorded with the earlier result (``reused_from``).
    With ``settings.early_stop``, a candidate the rule stops is PRUNED (feasible) with
    ``stopped_early`` and counts as trained. A worker stops by itself, with one line, after
    ``MAX_FAILED_IN_A_ROW`` trials whose training diverged one after another
    (``TrainingDivergedError``). A sampler that has converged proposes allocations trained
    before (many points of the space give one allocation): after ``EXPLORE_AFTER_REUSED`` of
    them in a row, the next proposals are drawn at random until one is new, and after
    ``MAX_REUSED_IN_A_ROW`` the space is taken as exhausted (``SearchStalledError``). On Ctrl-C the running trial is failed, its
    allocation re-enqueued, and ``KeyboardInterrupt`` raised.
    """
    callbacks = callbacks or Callbacks()
    liveness = liveness or Liveness()
    patience = Patience(liveness.patience, callbacks.storage_wait)
    early_stop = EarlyStop(study, settings.early_stop) if settings.early_stop is not None else None
    summary = WorkerSummary()
    started = time.monotonic()
    streak: list[str] = []  # the kinds of the last outcomes that did not advance the study
    while True:
        patience.call("looking for silent workers", lambda: fail_stale(study))
        counts = patience.call("counting trials", lambda: study_counts(study))
        if counts.trained >= n_trials:
            break
        if timeout is not None and time.monotonic() - started >= timeout:
            summary.stopped_by = "timeout"
            break
        if counts.trained + counts.training >= n_trials:  # the last trials are being trained elsewhere
            callbacks.waiting(counts.training)
            time.sleep(liveness.poll)
            continue
        reused = len(streak) - next((i + 1 for i in range(len(streak) - 1, -1, -1) if streak[i] != "reused"), 0)
        outcome = run_trial(study, settings, evaluator, patience=patience, callbacks=callbacks, liveness=liveness,
                            trained=counts.trained, target=n_trials, early_stop=early_stop, explore=reused >= EXPLORE_AFTER_REUSED)  # fmt: skip
        getattr(summary, {"trained": "trained", "stopped": "stopped", "reused": "reused", "infeasible": "infeasible",
                          "failed": "failed", "lost": "lost"}[outcome.kind]).append(outcome.number)  # fmt: skip
        streak = [] if outcome.kind in ("trained", "stopped") else [*streak, outcome.kind]
        if streak[-MAX_FAILED_IN_A_ROW:].count("failed") == MAX_FAILED_IN_A_ROW:
            raise TrainingDivergedError(
                f"training diverged in {MAX_FAILED_IN_A_ROW} trials in a row (last: {outcome.error}): lower lr in the "
                "preset or --weights, or check the data; the failed trials are recorded with the reason"
            )
        if streak.count("reused") >= MAX_REUSED_IN_A_ROW and all(k == "reused" for k in streak[-MAX_REUSED_IN_A_ROW:]):
            raise SearchStalledError(
                f"{MAX_REUSED_IN_A_ROW} proposals in a row gave allocations trained before, the last "
                f"{max(0, MAX_REUSED_IN_A_ROW - EXPLORE_AFTER_REUSED)} of them drawn at random: the search has nothing new "
                "to try at this budget; stop here or raise --budget"
            )
    return summary


def _tell(
    study: optuna.Study,
    patience: Patience,
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
        return patience.call("recording a result", tell)
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    except ValueError as exc:  # "Cannot tell a FAIL trial."
        if str(exc).startswith("Cannot tell a"):
            return None
        raise
