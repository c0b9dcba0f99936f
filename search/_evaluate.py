"""How a worker scores a candidate: the seam between the search loop and training.

An evaluator is called once per candidate and returns a ``TrainResult``; the worker's loop
knows nothing of what it does. ``TrainingEvaluator`` (the default) trains the candidate with
the study's recipe; benchmarks and tests pass their own (a cache, a made-up accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mtlsearch._execution import check_execution
from mtlsearch._settings import Settings
from mtlsearch._train import Probe, StepCallback, TrainResult, resolve_device, train_allocation

if TYPE_CHECKING:
    from mtlsearch.datasets import Task
    from mtlsearch.models import Candidate


class Evaluator(Protocol):
    """Scores one candidate. ``on_step(done, total)`` reports progress; a ``probe`` (the opt-in
    early-stopping rule) is called with the mean val accuracy part-way and may stop training
    there (the result's ``stopped_at`` says so). May raise ``FloatingPointError`` when training
    diverges: the trial is then failed with that message."""

    device: str

    def __call__(self, candidate: Candidate, *, on_step: StepCallback | None = None, probe: Probe | None = None) -> TrainResult: ...


@dataclass
class TrainingEvaluator:
    """Trains every candidate with ``train_allocation`` on ``tasks`` at the study's fidelity and
    seed, on ``device``, its steps run as ``execution`` says (None: the study's way; ``auto``:
    the verdict its first candidate's timing found, kept for the others)."""

    settings: Settings
    tasks: Sequence[Task]
    device: str = "auto"
    execution: str | None = None
    seed: int | None = None  # another seed than the study's (--repeats)
    verdicts: dict[tuple[object, ...], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_execution(self.execution)
        self.device = resolve_device(self.device)

    def __call__(self, candidate: Candidate, *, on_step: StepCallback | None = None, probe: Probe | None = None) -> TrainResult:
        _, result = train_allocation(
            candidate.allocation_dict, self.settings, self.tasks, device=self.device, seed=self.seed,
            on_step=on_step, probe=probe, execution=self.execution, verdicts=self.verdicts,
        )  # fmt: skip
        return result
