"""The worker loop stops by itself, with one line, when going on cannot help: training that
diverges trial after trial, or a sampler that proposes only allocations trained before. The
real loop (``mtlsearch.run_worker``) runs on a real study; only the evaluator is the test's."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

import mtlsearch
from mtlsearch.errors import SearchStalledError, TrainingDivergedError


class Scripted:
    """An evaluator that diverges on the calls listed in ``diverge_on`` (counted from 0) and
    otherwise scores a candidate by its share of task-specific filters."""

    device = "cpu"

    def __init__(self, diverge_on: set[int] | None = None) -> None:
        self.diverge_on = diverge_on if diverge_on is not None else set()
        self.calls = 0

    def __call__(self, candidate, *, on_step=None, probe=None) -> mtlsearch.TrainResult:  # type: ignore[no-untyped-def]
        call, self.calls = self.calls, self.calls + 1
        if call in self.diverge_on:
            raise FloatingPointError("training diverged in epoch 1 (a non-finite loss)")
        return mtlsearch.TrainResult({"mean": 0.5 + candidate.specific_fraction}, 0.01, 1000.0)


class Fixed(optuna.samplers.BaseSampler):
    """Proposes the same point every time: the highest value of every parameter (the whole budget, spread evenly)."""

    def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
        return {}

    def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        return param_distribution.high


def _study(tiny_settings, tmp_path: Path, name: str) -> tuple[optuna.Study, mtlsearch.Settings]:
    settings, _ = tiny_settings
    handle = mtlsearch.create_study(settings, storage=f"sqlite:///{tmp_path / 's.db'}", study_name=name, n_trials=12)
    return handle.study, settings


def test_three_diverged_trials_in_a_row_stop_the_worker(tiny_settings, tmp_path: Path) -> None:
    study, settings = _study(tiny_settings, tmp_path, "diverges")
    evaluator = Scripted(diverge_on=set(range(100)))
    with pytest.raises(TrainingDivergedError, match=r"training diverged in 3 trials in a row \(last: training diverged in epoch 1"):
        mtlsearch.run_worker(study, settings, evaluator, n_trials=12)
    assert evaluator.calls == 3
    kinds = [r.kind for r in mtlsearch.records(study.get_trials(deepcopy=False))]
    assert kinds.count("failed") == 3 and "running" not in kinds


def test_divergence_now_and_then_does_not_stop_the_search(tiny_settings, tmp_path: Path) -> None:
    study, settings = _study(tiny_settings, tmp_path, "sometimes")
    evaluator = Scripted(diverge_on={0, 1, 3, 4, 6, 7})  # two in a row at most
    summary = mtlsearch.run_worker(study, settings, evaluator, n_trials=8)
    assert len(summary.failed) == 6 and mtlsearch.study_counts(study).trained == 8


def test_a_sampler_that_only_repeats_itself_stops_the_worker(tiny_settings, tmp_path: Path, monkeypatch) -> None:
    import mtlsearch._worker

    monkeypatch.setattr(mtlsearch._worker, "MAX_REUSED_IN_A_ROW", 5)
    monkeypatch.setattr(mtlsearch._worker, "EXPLORE_AFTER_REUSED", 10)  # never, before the stall
    study, settings = _study(tiny_settings, tmp_path, "repeats")
    study.sampler = Fixed()
    evaluator = Scripted()
    with pytest.raises(SearchStalledError, match="5 proposals in a row gave allocations trained before"):
        mtlsearch.run_worker(study, settings, evaluator, n_trials=12)
    records = mtlsearch.records(study.get_trials(deepcopy=False))
    # the four baselines and the one new proposal are trained once each; the repeats cost no training
    assert evaluator.calls == 5 and [r.kind for r in records].count("reused") == 5


def test_after_repeated_proposals_the_next_ones_are_drawn_at_random(tiny_settings, tmp_path: Path, monkeypatch) -> None:
    import mtlsearch._worker

    monkeypatch.setattr(mtlsearch._worker, "EXPLORE_AFTER_REUSED", 3)
    study, settings = _study(tiny_settings, tmp_path, "explores")
    study.sampler = Fixed()
    summary = mtlsearch.run_worker(study, settings, Scripted(), n_trials=8)
    records = mtlsearch.records(study.get_trials(deepcopy=False))
    trained = [r for r in records if r.kind == "trained"]
    # the baselines, the fixed proposal once, then one new allocation after every 3 repeats
    assert len(trained) == 8 and len({r.key for r in trained}) == 8 and len(summary.reused) == 3 * 3


class Probing(Scripted):
    """Calls the early-stopping probe: the calls in ``weak`` look hopeless at a third of their
    steps (and are stopped there, once the rule has enough finished trials to judge)."""

    def __init__(self, diverge_on: set[int], weak: set[int]) -> None:
        super().__init__(diverge_on)
        self.weak = weak

    def __call__(self, candidate, *, on_step=None, probe=None) -> mtlsearch.TrainResult:  # type: ignore[no-untyped-def]
        call = self.calls
        result = super().__call__(candidate, on_step=on_step, probe=probe)
        early = 0.0 if call in self.weak else result.accuracy
        if probe is not None and probe(early):
            return mtlsearch.TrainResult({"mean": early}, 0.01, 1000.0, early, stopped_at=1)
        return mtlsearch.TrainResult(result.task_accuracy, 0.01, 1000.0, early)


@pytest.mark.slow
def test_every_reader_counts_the_same_trials(tiny_settings, tmp_path: Path, monkeypatch) -> None:
    """A study with trials of every kind: the worker's target, ``studies``, ``export``, the
    report's data and ``show`` classify each trial the same way."""
    import dataclasses

    import mtlsearch._worker
    from conftest import run_cli
    from mtlsearch._results import trials_frame

    monkeypatch.setattr(mtlsearch._worker, "MAX_REUSED_IN_A_ROW", 2)
    settings = dataclasses.replace(tiny_settings[0], early_stop=0.01)
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = mtlsearch.create_study(settings, storage=url, study_name="every-kind", n_trials=12).study
    study.sampler = Fixed()
    # calls 0-3: the baselines; 4: the fixed proposal diverges; 5: it again, stopped early;
    # 6: it again, trained; then it is proposed again and again: reused, until the stall
    with pytest.raises(SearchStalledError):
        mtlsearch.run_worker(study, settings, Probing(diverge_on={4}, weak={5}), n_trials=12)
    over = optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={}, distributions={},
                                     system_attrs={"constraints": [0.05]}, user_attrs={"specific_fraction": 0.15})  # fmt: skip
    study.add_trial(over)  # as an older search space recorded a proposal over the budget
    study.enqueue_trial({}, user_attrs={"strategy": "shared"})

    counts = mtlsearch.study_counts(study)
    expected = {"trained": 5, "stopped": 1, "reused": 2, "infeasible": 1, "failed": 1, "running": 0, "waiting": 1}
    assert dict(counts.by_kind) == expected and counts.trained == 6
    listed = run_cli("studies", "--storage", url, cwd=tmp_path)
    row = next(line for line in listed.stdout.splitlines() if "every-kind" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[4:11] == ["6/12", "1", "2", "1", "1", "0", "1"], row  # trained (as the target counts) of the target, then each kind
    path, rows = mtlsearch.export_trials(study, tmp_path / "t.json", fmt="json")
    import json

    kinds = [r["kind"] for r in json.loads(path.read_text())]
    assert rows == sum(expected.values()) and {k: kinds.count(k) for k in expected} == expected
    frame = trials_frame(study)  # the report's data: every trained, stopped or over-budget trial, once
    assert sorted(frame["kind"].value_counts().items()) == [("infeasible", 1), ("stopped", 1), ("trained", 5)]
    reused = next(r.number for r in mtlsearch.records(study.get_trials()) if r.kind == "reused")
    shown = run_cli("show", "--trial", str(reused), "--study-name", "every-kind", "--storage", url, cwd=tmp_path)
    assert shown.returncode == 0 and "reused" in shown.stdout
