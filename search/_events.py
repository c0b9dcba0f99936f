"""A worker's progress as events: one plain dict per thing that happened.

``EventCallbacks`` turns the worker's callbacks into events and hands each to a sink: the CLI's
display in the same process, or a JSON line on stdout for the parent of ``run --workers``,
which draws the events of all its workers with the same display. So a worker's progress is
rendered in one place, whichever process trained it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from mtlsearch._worker import Callbacks

if TYPE_CHECKING:
    import optuna

    from mtlsearch._train import TrainResult
    from mtlsearch.models import Candidate

Event = dict[str, object]
STEP_EVERY_S = 0.25  # at most four step events a second


class EventCallbacks(Callbacks):
    """Worker callbacks as events for ``sink``."""

    def __init__(self, sink: Callable[[Event], None]) -> None:
        self.sink = sink
        self._last_step = 0.0

    def emit(self, event: str, **data: object) -> None:
        self.sink({"event": event, **data})

    def trial_started(self, number: int, candidate: Candidate, trained: int, target: int) -> None:
        self.emit("start", trial=number, strategy=candidate.strategy, params=candidate.counts.total,
                  specific=candidate.specific_fraction, trained=trained, target=target)  # fmt: skip

    def on_step(self, done: int, total: int) -> None:  # type: ignore[override]
        now = time.monotonic()
        if done == total or now - self._last_step >= STEP_EVERY_S:
            self._last_step = now
            self.emit("step", done=done, total=total)

    def trial_finished(self, trial: optuna.trial.FrozenTrial, result: TrainResult) -> None:
        self.emit("finish", trial=trial.number, strategy=trial.user_attrs.get("strategy", "search"),
                  accuracy=result.accuracy, params=trial.user_attrs["params"], seconds=result.train_seconds)  # fmt: skip

    def trial_infeasible(self, number: int, candidate: Candidate) -> None:
        self.emit("infeasible", trial=number)

    def trial_reused(self, number: int, earlier: int) -> None:
        self.emit("reused", trial=number, earlier=earlier)

    def trial_stopped(self, number: int, result: TrainResult, median: float) -> None:
        self.emit("stopped", trial=number, accuracy=result.probe_accuracy, median=median, seconds=result.train_seconds)

    def trial_failed(self, number: int, error: str) -> None:
        self.emit("failed", trial=number, error=error)

    def waiting(self, in_flight: int) -> None:
        self.emit("waiting", in_flight=in_flight)

    def storage_wait(self, reason: str, delay: float) -> None:
        self.emit("storage", reason=reason, delay=delay)


def json_lines(stream: IO[str] | None = None) -> Callable[[Event], None]:
    """A sink that writes every event as one JSON line (``worker --events``)."""
    out = stream or sys.stdout

    def write(event: Event) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    return write
