from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from mtlsearch import _worker
from mtlsearch._storage import open_storage
from mtlsearch._study import create_or_load, space_for
from mtlsearch._api import search
from mtlsearch.errors import SettingsMismatchError, UsageError
from mtlsearch.models import BASELINES


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path):
    """The same contract on both storages; on PostgreSQL the test's study is dropped after."""
    if request.param == "sqlite":
        yield open_storage(f"sqlite:///{tmp_path / 'study.db'}")
        return
    storage = open_storage(request.getfixturevalue("pg_url"))
    yield storage
    for summary in optuna.get_all_study_summaries(storage):
        if summary.study_name == "s":
            optuna.delete_study(study_name="s", storage=storage)


def test_contract_on_creation(storage, tiny_settings) -> None:
    settings, _ = tiny_settings
    study, created = create_or_load(storage, "s", settings)
    assert created
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["accuracy", "params"]
    assert study.user_attrs["settings"]["budget"] == settings.budget
    assert study.user_attrs["settings"]["tasks"] == list(settings.tasks)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["strategy"] for t in waiting] == list(BASELINES)


def test_baselines_are_enqueued_once(storage, tiny_settings) -> None:
    settings, _ = tiny_settings
    create_or_load(storage, "s", settings)
    study, created = create_or_load(storage, "s", settings)
    assert not created
    assert len(study.get_trials(states=(TrialState.WAITING,))) == len(BASELINES)


def test_joining_with_other_settings_names_them(storage, tiny_settings) -> None:
    settings, _ = tiny_settings
    create_or_load(storage, "s", settings)
    other = dataclasses.replace(settings, budget=0.3, fidelity=dataclasses.replace(settings.fidelity, epochs=9))
    with pytest.raises(SettingsMismatchError, match=r"budget.*fidelity\.epochs|fidelity\.epochs.*budget"):
        create_or_load(storage, "s", other)
    assert [st.study_name for st in storage.get_all_studies()].count("s") == 1


@pytest.mark.slow
def test_trained_trials_carry_the_contract_attributes(storage, tiny_settings) -> None:
    settings, tasks = tiny_settings
    study, _ = create_or_load(storage, "s", settings)
    summary = search(study, settings, tasks, n_trials=6, device="cpu")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 6 == len(summary.trained)
    assert {t.user_attrs["strategy"] for t in complete} >= set(BASELINES) | {"search"}
    for trial in complete:
        assert set(trial.user_attrs) >= {
            "strategy", "task_accuracy", "specific_fraction", "params", "allocation",
            "train_seconds", "images_per_second", "device", "execution", "seed",
        }  # fmt: skip
        assert trial.user_attrs["execution"] in ("loop", "stacked")
        assert trial.values[1] == trial.user_attrs["params"]
        assert trial.system_attrs["constraints"][0] == pytest.approx(trial.user_attrs["specific_fraction"] - settings.budget)
        assert trial.system_attrs["constraints"][0] <= 0
        assert trial.values[0] == pytest.approx(sum(trial.user_attrs["task_accuracy"].values()) / len(tasks))


@pytest.mark.parametrize("granularity", ["layer", "block", "stage"])
def test_every_proposal_fits_the_budget_and_the_strategies_are_points_of_the_space(tiny_settings, granularity) -> None:
    """Random parameters (totals from one filter to the budget, shares anywhere in [0, 1], some
    units left out) always give a feasible candidate that spends its total to within one filter
    per unit; every strategy at the budget is the image of its own parameters."""
    import dataclasses
    import math

    from mtlsearch._space import BudgetSpace
    from mtlsearch.models import STRATEGIES, Candidate, backbone_spec, strategy_allocation

    settings, _ = tiny_settings
    spec = backbone_spec(settings.backbone)
    space = BudgetSpace(spec, granularity, settings.budget)
    rng = np.random.default_rng(0)
    largest_filter = max(c.weights_per_filter for c in spec.convs)
    for _ in range(300):
        total = math.exp(rng.uniform(math.log(space.smallest), math.log(settings.budget)))
        shares = {u: float(rng.uniform()) * (rng.uniform() < 0.7) for u in space.unit_convs}
        candidate = Candidate.create(spec, [10, 10], space.allocation(total, shares), granularity, strategy="search")  # type: ignore[arg-type]
        assert candidate.violation(settings.budget) <= 0
        reachable = sum(c.params for u, convs in space.unit_convs.items() if shares[u] > 0 for c in convs)
        wanted = min(int(total * spec.conv_params), reachable)  # units with no share get nothing
        assert candidate.counts.specific_conv >= wanted - len(space.unit_convs) * largest_filter
    for strategy in STRATEGIES[:-1]:  # every baseline, at the budget
        allocation = strategy_allocation(strategy, spec, granularity, settings.budget, seed=1)  # type: ignore[arg-type]
        params = space.params(allocation)
        again = space.allocation(params["total"], {k.removeprefix("share:"): v for k, v in params.items() if k != "total"})
        key = Candidate.create(spec, [10], allocation, granularity, strategy=strategy).key  # type: ignore[arg-type]
        assert Candidate.create(spec, [10], again, granularity, strategy=strategy).key == key  # type: ignore[arg-type]
    assert dataclasses.replace(settings, budget=0.0).budget == 0.0  # a zero budget: nothing to search
    assert not BudgetSpace(spec, granularity, 0.0).searchable


@pytest.mark.slow
def test_no_sampler_proposes_an_over_budget_candidate(tiny_settings, tmp_path) -> None:
    """Every sampler, 25 proposals each, through the worker's own proposal step: all feasible."""
    import dataclasses

    from mtlsearch._study import make_sampler
    from mtlsearch._worker import propose

    settings, _ = tiny_settings
    for sampler in ("tpe", "random", "nsga2", "gp"):
        chosen = dataclasses.replace(settings, sampler=sampler)
        study, _ = create_or_load(open_storage(f"sqlite:///{tmp_path / (sampler + '.db')}"), "s", chosen)
        study.sampler = make_sampler(chosen)
        for i in range(25):
            trial = study.ask()
            candidate = propose(study, trial, chosen, trial.user_attrs.get("strategy", "search"))
            assert candidate.violation(chosen.budget) <= 0
            study.tell(trial, [0.5 + 0.01 * i, float(candidate.counts.total)])
        assert all(t.system_attrs["constraints"][0] <= 0 for t in study.trials)


def test_an_older_study_is_refused_with_one_line(tiny_settings, tmp_path) -> None:
    from mtlsearch._schema import SPACE_ATTR
    from mtlsearch._study import load_study

    settings, _ = tiny_settings
    storage = open_storage(f"sqlite:///{tmp_path / 'old.db'}")
    study, _ = create_or_load(storage, "old", settings)
    storage.set_study_system_attr(study._study_id, SPACE_ATTR, 1)
    with pytest.raises(UsageError, match=r"older mtlsearch with search space 1 .*create a new study"):
        load_study(storage, "old")


@pytest.mark.slow
def test_an_allocation_trained_before_is_reused_not_trained(tiny_settings, tmp_path) -> None:
    settings, tasks = tiny_settings
    study, _ = create_or_load(open_storage(f"sqlite:///{tmp_path / 'study.db'}"), "s", settings)
    space = space_for(settings)
    # the shared model's parameters again: the same model as the shared baseline
    study.enqueue_trial(space.params({}), user_attrs={"strategy": "manual"})
    summary = search(study, settings, tasks, n_trials=5, device="cpu")
    shared = [t for t in study.trials if t.user_attrs.get("strategy") == "shared"][0]
    manual = [t for t in study.trials if t.user_attrs.get("strategy") == "manual"][0]
    assert manual.state == TrialState.COMPLETE and manual.user_attrs["reused_from"] == shared.number
    assert manual.values == shared.values and manual.user_attrs["task_accuracy"] == shared.user_attrs["task_accuracy"]
    assert summary.reused == [manual.number] and len(summary.trained) == 5
    assert _worker.trained_count(study) == 5  # the reused result does not count towards the target


def test_the_proxy_reaper_fails_and_retries_a_silent_trial(tiny_settings, tmp_path) -> None:
    from mtlsearch._liveness import BEAT_ATTR, Reaper

    settings, _ = tiny_settings
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study, _ = create_or_load(storage, "s", settings)
    alive, silent = study.ask(), study.ask()
    for trial in (alive, silent):
        storage.set_trial_system_attr(trial._trial_id, BEAT_ATTR, 1)
    reaper = Reaper(storage, grace=5)
    assert reaper.sweep(now=0.0) == []
    storage.set_trial_system_attr(alive._trial_id, BEAT_ATTR, 2)
    assert reaper.sweep(now=4.0) == []  # silent for 4 s: within the grace period
    assert reaper.sweep(now=6.0) == [silent.number]
    assert storage.get_trial(silent._trial_id).state == TrialState.FAIL
    assert storage.get_trial(alive._trial_id).state == TrialState.RUNNING
    (retry,) = [t for t in study.get_trials(states=(TrialState.WAITING,)) if t.system_attrs.get("failed_trial") == silent.number]
    assert retry.params == study.trials[silent.number].params
    assert reaper.sweep(now=20.0) == [alive.number]  # its beats stopped at 4 s
