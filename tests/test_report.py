from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from mtlsearch._figures import pareto_figure
from mtlsearch._report import write_report
from mtlsearch._results import pareto_info, summary_table
from mtlsearch._study import create_or_load

TASKS = ("grayscale", "negative-tint", "sketch", "striped")


def _add(study, number_hint: str, strategy: str, accuracy: float | None, params: int, fraction: float, budget: float) -> None:
    attrs = {"strategy": strategy, "params": params, "specific_fraction": fraction}
    if accuracy is not None:
        attrs["task_accuracy"] = dict.fromkeys(TASKS, accuracy)
    study.add_trial(create_trial(
        state=TrialState.COMPLETE if accuracy is not None else TrialState.PRUNED,
        values=[accuracy, params] if accuracy is not None else None,
        params={"alloc:stem": fraction}, distributions={"alloc:stem": FloatDistribution(0, 1)},
        user_attrs=attrs, system_attrs={"constraints": [fraction - budget]},
    ))  # fmt: skip


@pytest.fixture()
def study(tmp_path, tiny_settings):
    settings, _ = tiny_settings
    study, _ = create_or_load(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'r.db'}"), "r", settings)
    b = settings.budget
    _add(study, "a", "shared", 0.80, 700, 0.0, b)
    _add(study, "b", "bottom-specific", 0.84, 900, b, b)
    _add(study, "c", "top-specific", 0.82, 900, b, b)
    _add(study, "d", "random", 0.81, 900, b, b)
    _add(study, "e", "search", 0.83, 800, b / 2, b)  # on the front
    _add(study, "f", "search", 0.79, 850, b / 2, b)  # dominated
    _add(study, "g", "search", None, 1200, b * 2, b)  # over budget, never trained
    return study


def test_pareto_data(study, tiny_settings) -> None:
    from mtlsearch.models import Candidate, backbone_spec, strategy_allocation

    settings, _ = tiny_settings
    info = pareto_info(study)
    assert list(info.front["strategy"]) == ["shared", "search", "bottom-specific"]
    assert list(info.front["params"]) == [700, 800, 900]
    assert set(info.baselines["strategy"]) == {"shared", "bottom-specific", "top-specific", "random"}
    assert list(info.infeasible["params"]) == [1200]
    assert len(info.trained) == 6 and not info.trained["trial"].isin(info.infeasible["trial"]).any()
    # the budget line: where a candidate that spends the whole budget lands (to within a filter per unit)
    spec = backbone_spec(settings.backbone)
    for strategy in ("bottom-specific", "top-specific"):
        allocation = strategy_allocation(strategy, spec, settings.granularity, settings.budget)
        total = Candidate.create(spec, settings.num_classes, allocation, settings.granularity, strategy=strategy).counts.total
        assert total <= info.budget_params <= total * 1.01


def test_summary_table_lists_baselines_and_best_searched(study) -> None:
    table = summary_table(pareto_info(study))
    assert list(table["accuracy"]) == sorted(table["accuracy"], reverse=True)
    assert set(table["strategy"]) == {"shared", "bottom-specific", "top-specific", "random", "search"}
    assert "acc:sketch" in table.columns


def test_figure_labels_baselines_and_keeps_infeasible_apart(study) -> None:
    fig = pareto_figure(pareto_info(study))
    names = [t.name for t in fig.data]
    assert {"shared", "bottom-specific", "top-specific", "random", "Pareto front", "over budget"} <= set(names)
    over = next(t for t in fig.data if t.name == "over budget")
    assert over.yaxis != next(t for t in fig.data if t.name == "Pareto front").yaxis


def test_report_is_self_contained(study, tmp_path) -> None:
    page = write_report(study, tmp_path / "x.html").read_text()
    assert "<script src=" not in page  # plotly.js inline: no network needed
    assert "negative-tint" in page and "bottom-specific" in page


@pytest.mark.parametrize("name", ["../../escaped_report", "<script>alert(1)</script>", "a/b\\c", "..", "", "x" * 300])
def test_a_study_name_never_chooses_where_its_report_lands(name: str, tmp_path) -> None:
    from mtlsearch._report import output_path, safe_name

    for out in (None, tmp_path / "reports"):
        path = output_path(out, name, ".html")
        folder = (out or Path("mtlsearch-report")).resolve()
        assert path.resolve().parent == folder and path.suffix == ".html"
        assert not set(safe_name(name)) & set("/\\<>:\"|?* ") and not safe_name(name).startswith(".")
        assert 0 < len(safe_name(name)) <= 120
    assert output_path(tmp_path / "mine.html", name, ".html") == tmp_path / "mine.html"  # a file named by the user is used as it is


def test_the_verdict_judges_the_winner_against_the_presets_noise() -> None:
    """On the control (fashion-domains, noise 0.006) a winner 0.004 over shared is no winner;
    on the default a searched candidate 0.03 over the best baseline is one, and the sentence
    says by how much."""
    from mtlsearch import study_settings
    from mtlsearch._results import verdict

    def trained(best: float) -> list[dict]:
        return [{"trial": 0, "strategy": "shared", "accuracy": 0.840}, {"trial": 1, "strategy": "bottom-specific", "accuracy": 0.838},
                {"trial": 2, "strategy": "top-specific", "accuracy": 0.842}, {"trial": 5, "strategy": "search", "accuracy": best}]  # fmt: skip

    control = study_settings("fashion-domains")
    said = verdict(trained(0.844), control, [])
    assert said is not None and said.startswith("Nothing here beats the shared model beyond the noise: the most accurate candidate, trial 5")
    assert "+0.0040 over shared, 0.7x the noise; the noise of a difference between two candidates is 0.0060 (measured for preset fashion-domains" in said
    default = study_settings("embedded")
    said = verdict(trained(0.872), default, [])
    assert said is not None and said.startswith("Trial 5 (search) is the most accurate: +0.0300 over the best baseline, top-specific")
    assert "2.1x the noise, beyond the noise" in said
    assert "within the noise" in (verdict(trained(0.869), default, []) or "")  # 2.1x over shared, 1.9x over top-specific
