"""How a training step runs its tasks: one after another, or all stacked in one pass.

``loop`` runs each task's batch through that task's model in turn (one call per layer and
task); ``stacked`` runs every task at once with the tasks side by side in the channels (one
call per layer: ``MultiDomainNet.forward_stacked``). Both compute the same function; which is
faster depends on the backbone and the hardware, so ``auto`` measures it (docs/benchmarks.md).
"""

from __future__ import annotations

import time

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
    its candidates). The first training of its kind finds out on its own first steps: two warm-up steps each way, then four timed steps each way, alternating (real
    training steps: both ways compute the same function). The faster way by its quickest step is kept, which
    a heartbeat or a progress redraw landing on one step cannot sway. Backbones that cannot
    stack run ``loop``.
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
        self.plan: list[bool] = []
        self.times: dict[bool, list[float]] = {False: [], True: []}
        self.started = 0.0
        if execution == "stacked" and blocker is not None:
            raise ValueError(f"--execution stacked: these tasks cannot run stacked ({blocker}); use --execution loop")
        if execution == "loop" or blocker is not None:
            self.stacked = False
        elif execution == "stacked":
            self.stacked = True
        elif key in self.verdicts:
            self.stacked = self.verdicts[key]
        else:
            self.stacked = False
            plan = [False] * self.WARMUP + [True] * self.WARMUP + [False, True] * self.TIMED
            if total_steps > len(plan):  # else too short to time: loop, and no verdict kept
                self.plan = plan

    @property
    def name(self) -> str:
        return "stacked" if self.stacked else "loop"

    def way(self, step: int, device: str) -> bool:
        """Stacked for this step? Call once per step, in order, before it."""
        if step >= len(self.plan):
            return self.stacked
        if step >= 2 * self.WARMUP:
            self.started = self._now(device)
        return self.plan[step]

    def after(self, step: int, device: str) -> None:
        """Call after each step; the last timed step gives the verdict."""
        if not 2 * self.WARMUP <= step < len(self.plan):
            return
        self.times[self.plan[step]].append(self._now(device) - self.started)
        if step == len(self.plan) - 1:
            self.stacked = min(self.times[True]) < min(self.times[False])
            self.verdicts[self.key] = self.stacked

    @staticmethod
    def _now(device: str) -> float:
        import torch

        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        return time.perf_counter()
