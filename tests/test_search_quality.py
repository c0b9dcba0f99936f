"""Issue 6's features: the sampler setting, the opt-in early-stopping rule, --repeats."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
from optuna.trial import TrialState

from conftest import run_cli


def _study(settings, name="q"):  # type: ignore[no-untyped-def]
    from mtlsearch._study import create_or_load

    study, _ = create_or_load(optuna.storages.InMemoryStorage(), name, settings)
    return study


def _add_probed(study, accuracy: float, count: int) -> None:  # type: ignore[no-untyped-def]
    """Finished trials that were probed at ``accuracy`` (outside the search space: the rule only
    reads their probe)."""
    for _ in range(count):
        study.add_trial(optuna.trial.create_trial(values=[accuracy, 1.0], user_attrs={"probe_accuracy": accuracy}))


@pytest.mark.slow
def test_probe_stops_training_at_a_third_of_the_steps(tiny_settings) -> None:
    import torch

    from mtlsearch._train import train_candidate
    from mtlsearch.models import build_model

    settings, tasks = tiny_settings
    settings = dataclasses.replace(settings, fidelity=dataclasses.replace(settings.fidelity, epochs=3))
    seen: list[float] = []
    steps: list[int] = []

    def build():  # type: ignore[no-untyped-def]
        torch.manual_seed(0)
        return build_model(settings.backbone, num_classes=list(settings.num_classes), allocation={}, granularity=settings.granularity)

    full = train_candidate(build(), tasks, settings.fidelity, device="cpu", seed=0, probe=lambda acc: seen.append(acc) or False)
    stopped = train_candidate(build(), tasks, settings.fidelity, device="cpu", seed=0, on_step=lambda d, t: steps.append(t), probe=lambda acc: True)
    total = steps[0]
    assert full.stopped_at is None and full.probe_accuracy == seen[0]
    assert stopped.stopped_at == round(total / 3) and len(steps) == stopped.stopped_at < total
    assert stopped.probe_accuracy == pytest.approx(seen[0])  # the same training up to the probe
    assert stopped.accuracy == pytest.approx(seen[0])


@pytest.mark.slow
def test_early_stop_rule_prunes_candidates_below_the_median_and_counts_them(tiny_settings) -> None:
    from mtlsearch._results import pareto_info
    from mtlsearch._api import search
    from mtlsearch._schema import STOPPED_EARLY as STOPPED_ATTR
    from mtlsearch._worker import trained_count

    settings, tasks = tiny_settings
    settings = dataclasses.replace(settings, early_stop=0.05)
    study = _study(settings)
    _add_probed(study, 0.99, 4)  # far above what a candidate reaches in a third of one tiny epoch
    summary = search(study, settings, tasks, n_trials=4 + 3, device="cpu")
    assert len(summary.stopped) == 3 and not summary.trained
    assert trained_count(study) == 4 + 3  # stopped trials are trained trials: the target is met
    for number in summary.stopped:
        trial = study.trials[number]
        assert trial.state == TrialState.PRUNED
        info = trial.user_attrs[STOPPED_ATTR]
        assert info["median"] == pytest.approx(0.99) and info["margin"] == 0.05
        assert trial.user_attrs["probe_accuracy"] < 0.99 - 0.05
        assert trial.system_attrs["constraints"][0] <= 0  # feasible: not mistaken for over budget
    info = pareto_info(study)
    assert not set(summary.stopped) & set(info.trained["trial"]) and not set(summary.stopped) & set(info.infeasible["trial"])


def test_early_stop_rule_waits_for_enough_probed_trials(tiny_settings) -> None:
    from mtlsearch._api import search
    from mtlsearch._schema import PROBE_ACCURACY as PROBE_ATTR
    from mtlsearch._worker import MIN_PROBED

    settings, tasks = tiny_settings
    settings = dataclasses.replace(settings, early_stop=0.0)
    study = _study(settings)
    _add_probed(study, 0.99, MIN_PROBED - 2)  # the first trained trial brings MIN_PROBED - 1
    summary = search(study, settings, tasks, n_trials=MIN_PROBED - 1, device="cpu")
    assert summary.trained and not summary.stopped
    assert PROBE_ATTR in study.trials[summary.trained[0]].user_attrs


@pytest.mark.parametrize(("name", "cls"), [("random", "RandomSampler"), ("nsga2", "NSGAIISampler"), ("gp", "GPSampler"), ("tpe", "TPESampler")])
def test_sampler_setting_is_stored_and_used_on_load(tmp_path, name, cls) -> None:
    from mtlsearch._settings import resolve_settings
    from mtlsearch._storage import open_storage
    from mtlsearch._study import create_or_load, load_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    create_or_load(open_storage(url), "s", resolve_settings(sampler=name))
    assert type(load_study(open_storage(url), "s").sampler).__name__ == cls


@pytest.mark.slow
def test_sampler_cli_errors(tmp_path) -> None:
    bad = run_cli("create", "--sampler", "cmaes", "--storage", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path)
    assert bad.returncode == 2 and "--sampler is 'cmaes'" in bad.stderr and "tpe, random, nsga2, gp" in bad.stderr
    assert not (tmp_path / "s.db").exists()
    ok = run_cli("create", "--sampler", "random", "--study-name", "s", "--storage", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    other = run_cli("create", "--study-name", "s", "--storage", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path)
    assert other.returncode == 2 and "sampler: 'random' -> 'tpe'" in other.stderr
    negative = run_cli("create", "--early-stop", "-0.1", "--storage", f"sqlite:///{tmp_path / 't.db'}", cwd=tmp_path)
    assert negative.returncode == 2 and "--early-stop is -0.1" in negative.stderr
    assert not (tmp_path / "t.db").exists()
    stopping = run_cli("create", "--early-stop", "0.02", "--study-name", "e", "--storage", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path)
    assert stopping.returncode == 0 and "early stop 0.02 below the median" in " ".join(stopping.stdout.split())

    from mtlsearch._storage import open_storage
    from mtlsearch._study import load_study, stored_settings

    assert stored_settings(load_study(open_storage(f"sqlite:///{tmp_path / 's.db'}"), "e")).early_stop == 0.02


@pytest.mark.slow
def test_repeats_retrain_the_front_and_the_report_shows_the_spread(tmp_path) -> None:
    from mtlsearch._repeats import repeat_targets
    from mtlsearch._results import pareto_info, repeated_rows, repeats_of
    from mtlsearch._storage import open_storage
    from mtlsearch._study import load_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    args = ("run", "--study-name", "s", "--storage", url, "--n-trials", "5", "--epochs", "1", "--train-size", "64", "--val-size", "200", "--repeats", "2")
    first = run_cli(*args, cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert first.returncode == 0, first.stderr
    study = load_study(open_storage(url), "s")
    stored = repeats_of(study)
    targets = {t.number for t in repeat_targets(study)}
    assert set(stored) == targets and {t.number for t in study.best_trials} <= targets
    assert all(sorted(seeds) == [1, 2] for seeds in stored.values())  # the study's seed 0, then 1 and 2
    assert len(study.trials) == len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))  # repeats are no trials
    rows = repeated_rows(pareto_info(study))
    assert {r["trial"] for r in rows} == targets
    for r in rows:
        values = [study.trials[r["trial"]].values[0], *stored[r["trial"]].values()]
        assert r["seeds"] == 3 and r["accuracy_mean"] == pytest.approx(sum(values) / 3)
    page = (tmp_path / "mtlsearch-report" / "s.html").read_text()
    assert "Seed noise: the standard deviation of mean accuracy over 3 seeds" in page and "std over seeds (--repeats)" in page
    assert "Seed noise" in first.stdout
    again = run_cli(*args, cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert again.returncode == 0 and "already have 2 repeats: nothing to train" in again.stdout
    assert repeats_of(load_study(open_storage(url), "s")) == stored


def test_noise_notes_say_what_lies_within_the_noise() -> None:
    from mtlsearch._results import noise_notes

    rows = [
        {"trial": 0, "strategy": "shared", "accuracy_mean": 0.80, "accuracy_std": 0.004, "params": 1, "pareto": True, "seeds": 3},
        {"trial": 1, "strategy": "bottom-specific", "accuracy_mean": 0.83, "accuracy_std": 0.004, "params": 3, "pareto": False, "seeds": 3},
        {"trial": 7, "strategy": "search", "accuracy_mean": 0.835, "accuracy_std": 0.004, "params": 2, "pareto": True, "seeds": 3},
        {"trial": 9, "strategy": "search", "accuracy_mean": 0.84, "accuracy_std": 0.004, "params": 4, "pareto": True, "seeds": 3},
    ]
    notes = noise_notes(rows)
    assert notes[0].startswith("Seed noise") and "is 0.0040 on average" in notes[0]
    assert "trial 7 and trial 9" in notes[1] and "trial 0 and trial 7" not in notes[1]
    assert "trial 9" in notes[2] and "+0.0100" in notes[2] and "beyond the noise" in notes[2]
    rows[3]["accuracy_mean"] = 0.833
    assert "within the noise" in noise_notes(rows)[-1]
    assert "one training seed" in noise_notes([])[0] and "--repeats 2" in noise_notes([])[0]
