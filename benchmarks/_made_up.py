"""A made-up evaluator for benchmarks of the machinery (report speed, storage), where what a
candidate scores does not matter and training would only make them slow.

It is the worker's evaluator seam used as intended: the real worker loop, the real storage
and search space, and a score computed from the candidate instead of trained.
"""

from __future__ import annotations

import random

from mtlsearch import TrainResult


class MadeUpEvaluator:
    """``0.7 + 0.5 x specific fraction`` plus noise seeded by the candidate, per task."""

    device = "cpu"

    def __init__(self, tasks: tuple[str, ...]) -> None:
        self.tasks = tasks

    def __call__(self, candidate, *, on_step=None, probe=None) -> TrainResult:  # type: ignore[no-untyped-def]
        rng = random.Random(candidate.key)
        base = 0.7 + 0.5 * candidate.specific_fraction + rng.gauss(0, 0.02)
        accuracy = {t: round(base + 0.01 * (i - 1.5), 4) for i, t in enumerate(self.tasks)}
        return TrainResult(accuracy, train_seconds=0.0, images_per_second=0.0)
