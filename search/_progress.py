"""The CLI's live display of a worker: trials done, the running trial, the best so far."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mtlsearch._worker import Callbacks

if TYPE_CHECKING:
    import optuna

    from mtlsearch._train import TrainResult
    from mtlsearch.models import Candidate


def best_note(best: tuple[float, int, str] | None) -> str:
    if best is None:
        return "best: none yet"
    accuracy, number, strategy = best
    return f"best: {accuracy:.4f} (trial {number}, {strategy})"


class RichCallbacks(Callbacks):
    """Two bars: trained trials of the study's target, and steps of the running trial."""

    def __init__(self, console: Console, *, trained: int, target: int, best: tuple[float, int, str] | None) -> None:
        self.console = console
        self.target = target
        self.best = best
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}", markup=False),
            console=console,
        )
        self.trials = self.progress.add_task("trials", total=target, completed=trained, note=self._best_note())
        self.steps = self.progress.add_task("trial", total=1, visible=False, note="")

    def _best_note(self) -> str:
        return best_note(self.best)

    def __enter__(self) -> RichCallbacks:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def trial_started(self, number: int, candidate: Candidate, trained: int, target: int) -> None:
        self.progress.update(self.trials, description=f"trial {trained + 1} of {target}", completed=trained)
        note = f"{candidate.strategy}, {candidate.specific_fraction:.1%} task-specific, {candidate.counts.total:,} params"
        self.progress.reset(self.steps, total=1, visible=True, description=f"  #{number} steps", note=note)

    def on_step(self, done: int, total: int) -> None:  # type: ignore[override]
        self.progress.update(self.steps, completed=done, total=total)

    def trial_finished(self, trial: optuna.trial.FrozenTrial, result: TrainResult) -> None:
        strategy = trial.user_attrs.get("strategy", "search")
        if self.best is None or result.accuracy > self.best[0]:
            self.best = (result.accuracy, trial.number, strategy)
        self.progress.advance(self.trials)
        self.progress.update(self.trials, note=self._best_note())
        self.progress.update(self.steps, visible=False)
        self.console.print(
            f"  trial {trial.number:>3}  {strategy:<16} accuracy {result.accuracy:.4f}  "
            f"params {trial.user_attrs['params']:>11,}  {result.train_seconds:5.1f} s"
        )

    def trial_infeasible(self, number: int, candidate: Candidate) -> None:
        self.progress.update(self.trials, note=self._best_note() + " · skipped an over-budget proposal")

    def trial_reused(self, number: int, earlier: int) -> None:
        self.console.print(f"  trial {number:>3}  same allocation as trial {earlier}: result reused, not trained")

    def trial_stopped(self, number: int, result: TrainResult, median: float) -> None:
        self.progress.advance(self.trials)
        self.progress.update(self.steps, visible=False)
        self.console.print(
            f"  trial {number:>3}  stopped early: accuracy {result.probe_accuracy:.4f} at a third of its steps, "
            f"median {median:.4f}  {result.train_seconds:5.1f} s"
        )

    def waiting(self, in_flight: int) -> None:
        self.progress.update(self.trials, note=f"waiting for {in_flight} trial(s) in flight elsewhere")

    def storage_wait(self, reason: str, delay: float) -> None:
        self.progress.update(self.trials, note=f"storage unreachable ({reason}); retrying in {delay:.0f} s")
