"""How a training step runs its tasks: one after another, or all stacked in one pass.

``loop`` runs each task's batch through that task's model in turn (one call per layer and
task); ``stacked`` runs every task at once with the tasks side by side in the channels (one
call per layer: ``MultiDomainNet.forward_stacked``). Both compute the same function; which is
faster depends on the backbone and the hardware, so ``auto`` measures it (docs/benchmarks.md),
on a copy of the first candidate, before it trains.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mtlsearch.errors import UsageError

EXECUTIONS = ("auto", "loop", "stacked")


def check_execution(execution: str | None) -> str | None:
    """``execution`` if it names a way; None (the study's own way, ``Settings.execution``) stays None."""
    if execution is not None and execution not in EXECUTIONS:
        raise UsageError(f"unknown --execution {execution!r}: choose one of {', '.join(EXECUTIONS)}")
    return execution


class Executor:
    """Which way the training steps run their tasks: ``loop`` (task after task), ``stacked``
    (all tasks in one pass, one call per layer), or ``auto``.

    ``auto`` takes the way ``verdicts`` holds for the same backbone, number of tasks, image shape,
    batch and device (the caller keeps the dict across trainings: a worker keeps one for all
    its candidates). The first training of its kind finds out before it starts (``decide``): on
    a copy of the model, two warm-up steps each way, then four timed steps each way,
    alternating. The faster way by its quickest step is kept, which a heartbeat or a progress
    redraw landing on one step cannot sway. The copy is dropped, so the candidate trains every
    step the kept way and an ``auto`` training gives, to the bit, what a training pinned to
    that way gives. Backbones that cannot stack run ``loop``.
    """

    WARMUP, TIMED = 2, 4

    def __init__(
        self, execution: str, blocker: str | None, key: tuple[object, ...], total_steps: int,
        verdicts: dict[tuple[object, ...], bool] | None = None,
    ) -> None:  # fmt: skip
        """``blocker``: why the tasks cannot run stacked here, or None."""
        self.verdicts = {} if verdicts is None else verdicts
        if execution not in EXECUTIONS:
            raise ValueError(f"unknown execution {execution!r}: choose one of {', '.join(EXECUTIONS)}")
        self.key = key
        self.pending = False  # to be timed by ``decide`` before training
        if execution == "stacked" and blocker is not None:
            raise ValueError(f"--execution stacked: these tasks cannot run stacked ({blocker}); use --execution loop")
        if execution == "loop" or blocker is not None:
            self.stacked = False
        elif execution == "stacked":
            self.stacked = True
        elif key in self.verdicts:
            self.stacked = self.verdicts[key]
        else:  # a training no longer than the timing is not worth timing: loop, and no verdict kept
            self.stacked = False
            self.pending = total_steps > 2 * (self.WARMUP + self.TIMED)

    @property
    def name(self) -> str:
        return "stacked" if self.stacked else "loop"

    def decide(self, step: Callable[[bool], object], device: str) -> None:
        """Time both ways (call it when ``pending``): ``step(stacked)`` runs one step that is
        thrown away (on a copy of the model); the verdict is kept for the next training."""
        plan = [False] * self.WARMUP + [True] * self.WARMUP + [False, True] * self.TIMED
        times: dict[bool, list[float]] = {False: [], True: []}
        for i, way in enumerate(plan):
            started = self._now(device)
            step(way)
            if i >= 2 * self.WARMUP:
                times[way].append(self._now(device) - started)
        self.stacked = min(times[True]) < min(times[False])
        self.verdicts[self.key] = self.stacked
        self.pending = False

    @staticmethod
    def _now(device: str) -> float:
        import torch

        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        return time.perf_counter()
