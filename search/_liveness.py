"""Keeping a study consistent while workers die and databases blink.

- ``Beats``: while a worker runs a trial, a thread proves it is alive. On RDB storages this is
  Optuna's own heartbeat (the database server's clock); behind the gRPC proxy, which does not
  carry heartbeats, it is a counter in a trial system attribute that the proxy's ``Reaper``
  watches on its own clock.
- ``fail_stale``: trials whose worker fell silent for longer than the grace period are failed
  and retried once with the same allocation (``RetryFailedTrialCallback(max_retry=1)``).
- ``Patience``: a storage call that fails because the database is unreachable is retried with
  exponential backoff for a bounded time, then ``StorageUnavailableError``.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from mtlsearch import _schema as S
from mtlsearch.errors import StorageUnavailableError, disk_trouble, first_line

if TYPE_CHECKING:
    import optuna

T = TypeVar("T")
BEAT_ATTR = S.BEAT
MAX_RETRY = 1
FIRST_DELAY_S, MAX_DELAY_S = 0.5, 10.0


def retry_callback() -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """Re-enqueue a silent worker's trial with the same allocation, once."""
    import optuna

    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=MAX_RETRY)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_transient(exc: BaseException) -> bool:
    """Does ``exc`` say the storage is unreachable (rather than that the request was wrong)?"""
    from sqlalchemy import exc as sa

    for error in _chain(exc):
        if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, ConnectionError)):
            return True
        if type(error).__module__.startswith("psycopg") and type(error).__name__ in ("OperationalError", "InterfaceError"):
            return True
        code = getattr(error, "code", None)
        if callable(code) and getattr(code(), "name", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            return True  # grpc.RpcError
    return False


class Patience:
    """Rides out a storage outage of at most ``seconds`` in all: a call that fails because the
    database is unreachable is retried with exponential backoff (to 10 s), and the worker
    gives up (``StorageUnavailableError``) once ``seconds`` have passed since the outage began,
    counted across every call made during it, not per call. A call that succeeds ends the outage."""

    def __init__(self, seconds: float, on_wait: Callable[[str, float], None] | None = None) -> None:
        self.seconds = seconds
        self.on_wait = on_wait
        self.outage_began: float | None = None

    def call(self, what: str, fn: Callable[[], T]) -> T:
        delay = FIRST_DELAY_S
        while True:
            try:
                result = fn()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                now = time.monotonic()
                if self.outage_began is None:
                    self.outage_began = now
                left = self.outage_began + self.seconds - now
                if left <= 0:
                    reason = first_line(exc)
                    fix = "free some space on the database's disk" if disk_trouble(reason) else "start the database again"
                    raise StorageUnavailableError(
                        f"the storage was unreachable for {self.seconds:g} s (last while {what}: {reason}); "
                        f"gave up: {fix} and rerun; a trial left running is failed "
                        "and retried after the heartbeat grace period"
                    ) from None
                if self.on_wait is not None:
                    self.on_wait(first_line(exc), min(delay, left))
                time.sleep(min(delay, left))
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            self.outage_began = None
            return result


def heartbeat_enabled(storage: object) -> bool:
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    return isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)  # type: ignore[arg-type]


class Beats:
    """A thread that beats for one trial every ``interval`` seconds until the block ends.

    A beat that fails because the storage is away is skipped, not fatal: if the outage
    outlasts the grace period the trial is failed by others, which is what should happen.
    """

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, interval: float) -> None:
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"beats-{trial_id}", daemon=True)
        self._count = 0

    def beat(self) -> None:
        if heartbeat_enabled(self.storage):
            self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
        else:
            self._count += 1
            self.storage.set_trial_system_attr(self.trial_id, BEAT_ATTR, self._count)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception as exc:
                if not is_transient(exc):
                    return  # the trial finished under us (failed by another worker)
            self._stop.wait(self.interval)

    def __enter__(self) -> Beats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def fail_stale(study: optuna.Study) -> None:
    """Fail and retry the trials of silent workers (RDB storages; the proxy reaps its own)."""
    import optuna

    if heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


class Reaper:
    """The proxy's watch over workers behind it: a trial whose beat counter has not moved for
    ``grace`` seconds of this process's clock is failed and retried. One observer, one clock."""

    def __init__(self, storage: optuna.storages.BaseStorage, grace: float) -> None:
        self.storage, self.grace = storage, grace
        self._seen: dict[int, tuple[object, float]] = {}  # trial id -> (beat, when it last moved)

    def sweep(self, now: float | None = None) -> list[int]:
        import optuna
        from optuna.trial import TrialState

        now = time.monotonic() if now is None else now
        reaped, running = [], set()
        for summary in self.storage.get_all_studies():
            study: optuna.Study | None = None
            for trial in self.storage.get_all_trials(summary._study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                if BEAT_ATTR not in trial.system_attrs:
                    continue  # a worker on the database itself: Optuna's heartbeat covers it
                running.add(trial._trial_id)
                beat = trial.system_attrs[BEAT_ATTR]
                last = self._seen.get(trial._trial_id)
                if last is None or last[0] != beat:
                    self._seen[trial._trial_id] = (beat, now)
                    continue
                if now - last[1] <= self.grace:
                    continue
                try:
                    self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue
                study = study or optuna.load_study(study_name=summary.study_name, storage=self.storage)
                retry_callback()(study, self.storage.get_trial(trial._trial_id))
                reaped.append(trial.number)
        self._seen = {k: v for k, v in self._seen.items() if k in running}
        return reaped

    def run_forever(self, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                self.sweep()
            except Exception as exc:  # the database blinked: try again next sweep
                if not is_transient(exc):
                    raise
