from __future__ import annotations

import dataclasses

import optuna
import pytest
from optuna.trial import TrialState

from mtlsearch import _worker
from mtlsearch._storage import open_storage
from mtlsearch._study import AllocationSpace, create_or_load, space_for
from mtlsearch._worker import run_worker
from mtlsearch.errors import SettingsMismatchError
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


def test_trained_trials_carry_the_contract_attributes(storage, tiny_settings) -> None:
    settings, tasks = tiny_settings
    study, _ = create_or_load(storage, "s", settings)
    summary = run_worker(study, settings, tasks, n_trials=6, device="cpu")
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


def test_over_budget_candidate_is_recorded_infeasible_and_never_trained(storage, tiny_settings, monkeypatch) -> None:
    settings, tasks = tiny_settings
    study, _ = create_or_load(storage, "s", settings)
    for trial in study.get_trials(states=(TrialState.WAITING,)):  # only the over-budget one runs
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    space = space_for(settings)
    study.enqueue_trial(AllocationSpace.params(space.caps), user_attrs={"strategy": "manual"})
    trained_allocations = []
    real_train = _worker.train_candidate

    def spy(model, *args, **kwargs):
        trained_allocations.append(True)
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(_worker, "train_candidate", spy)
    monkeypatch.setattr(_worker, "MAX_INFEASIBLE_IN_A_ROW", 1)
    from mtlsearch.errors import SamplerStalledError

    with pytest.raises(SamplerStalledError, match="over-budget candidates in a row: it does not learn the budget"):
        run_worker(study, settings, tasks, n_trials=1, device="cpu")
    manual = [t for t in study.trials if t.user_attrs.get("strategy") == "manual"][0]
    assert manual.state == TrialState.PRUNED
    assert manual.system_attrs["constraints"][0] > 0
    assert manual.user_attrs["specific_fraction"] > settings.budget
    assert "task_accuracy" not in manual.user_attrs
    assert trained_allocations == []


def test_an_allocation_trained_before_is_reused_not_trained(tiny_settings, tmp_path) -> None:
    settings, tasks = tiny_settings
    study, _ = create_or_load(open_storage(f"sqlite:///{tmp_path / 'study.db'}"), "s", settings)
    space = space_for(settings)
    # fractions below one filter per unit build the same model as the shared baseline
    study.enqueue_trial({k: 1e-6 for k in AllocationSpace.params(space.caps)}, user_attrs={"strategy": "manual"})
    summary = run_worker(study, settings, tasks, n_trials=5, device="cpu")
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


def test_search_space_caps_each_unit_at_the_budget(tiny_settings) -> None:
    settings, _ = tiny_settings
    space = space_for(settings)
    spec = space.spec
    for unit, convs in spec.unit_convs(settings.granularity).items():
        cap = space.caps[unit]
        own = sum(int(cap * c.out_channels + 1e-9) * c.weights_per_filter for c in convs)
        assert own <= settings.budget * spec.conv_params
