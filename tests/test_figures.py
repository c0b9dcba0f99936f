"""The report's figure data, on a study whose trials the test knows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import filled_study
from mtlsearch._figures import (
    allocation_info,
    hypervolume_2d,
    hypervolume_info,
    shown_candidates,
    task_accuracy_frame,
)
from mtlsearch._figures import pareto_figure
from mtlsearch._report import write_report
from mtlsearch._results import pareto_info, reference_params, trials_frame
from mtlsearch._study import study_spec
from mtlsearch.models import BASELINES


@pytest.fixture(scope="module")
def known_study(tiny_settings, tmp_path_factory):
    settings, _ = tiny_settings
    _, study = filled_study(settings, tmp_path_factory.mktemp("fig"), "known", trials=40)
    return study, settings


def _dominated(a, b) -> bool:
    """Is ``a`` (accuracy, params) dominated by ``b``?"""
    return b[0] >= a[0] and b[1] <= a[1] and (b[0] > a[0] or b[1] < a[1])


def test_front_and_baselines_are_told_apart_and_nothing_is_over_budget(known_study) -> None:
    study, settings = known_study
    info = pareto_info(study)
    points = {r.trial: (r.accuracy, r.params) for r in info.trained.itertuples()}
    expected = {n for n, p in points.items() if not any(_dominated(p, q) for q in points.values())}
    assert set(info.front["trial"]) == expected and expected
    assert len(info.infeasible) == 0  # the search space fits every proposal to the budget
    assert "over budget" not in {t.name for t in pareto_figure(info).data}  # so the figure has no strip for them
    shown = shown_candidates(info)
    assert list(shown["strategy"][: len(BASELINES)]) == list(BASELINES)
    assert list(shown["label"][: len(BASELINES)]) == [f"{s} #{i}" for i, s in enumerate(BASELINES)]
    searched = shown.iloc[len(BASELINES):]
    assert set(searched["trial"]) == expected - set(info.baselines["trial"])
    assert all(label == f"front #{t}" for label, t in zip(searched["label"], searched["trial"]))
    assert info.budget_params == reference_params(settings, study_spec(study, settings))[1]
    assert (info.trained["params"] <= info.budget_params).all()


def test_allocation_heatmap_shows_where_each_strategy_put_its_filters(known_study) -> None:
    study, settings = known_study
    data = allocation_info(pareto_info(study), settings, study_spec(study, settings))
    rows = dict(zip(data.labels, data.fractions))
    assert data.units[0] == "conv1.0" and data.units[-1] == "layer4.1.conv2"  # the embedded preset: layer units
    assert rows["shared #0"] == [0.0] * len(data.units)
    bottom, top = rows["bottom-specific #1"], rows["top-specific #2"]
    assert bottom[0] == 1.0 and bottom[-1] == 0.0 and bottom == sorted(bottom, reverse=True)
    assert top[0] == 0.0 and top[-1] > 0.0
    for label, fractions, filters in zip(data.labels, data.fractions, data.filters):
        assert all(f == pytest.approx(k / n) and 0 <= k <= n for f, (k, n) in zip(fractions, filters))


def test_task_bars_and_hypervolume(known_study) -> None:
    study, settings = known_study
    frame = trials_frame(study)
    info = pareto_info(study, frame)
    bars = task_accuracy_frame(info)
    assert set(bars["task"]) == set(settings.tasks)
    assert len(bars) == len(shown_candidates(info)) * len(settings.tasks)
    one = bars[bars["label"] == "shared #0"].set_index("task")["accuracy"].to_dict()
    assert one == study.trials[0].user_attrs["task_accuracy"]
    hv = hypervolume_info(study, frame, settings)
    assert hv.trained == list(range(1, len(info.trained) + 1))
    assert all(b >= a - 1e-12 for a, b in zip(hv.hypervolume, hv.hypervolume[1:]))
    points = [(r.accuracy, r.params) for r in info.trained.itertuples()]
    assert hv.hypervolume[-1] == pytest.approx(hypervolume_2d(points, hv.shared_params, hv.reference_params))
    assert 0 < hv.hypervolume[-1] < 1


def test_hypervolume_2d_by_hand() -> None:
    # box: params 0..10, accuracy 0..1; (0.5 at 0) then (1.0 at 5): 5 x 0.5 + 5 x 1.0 = 7.5 of 10
    assert hypervolume_2d([(0.5, 0.0), (1.0, 5.0)], 0.0, 10.0) == pytest.approx(0.75)
    assert hypervolume_2d([(0.5, 0.0), (1.0, 5.0), (0.4, 6.0)], 0.0, 10.0) == pytest.approx(0.75)  # dominated
    assert hypervolume_2d([(0.5, 0.0), (1.0, 12.0)], 0.0, 10.0) == pytest.approx(0.5)  # beyond the budget
    assert hypervolume_2d([], 0.0, 10.0) == 0.0


def test_report_is_one_offline_file_with_every_figure(known_study, tmp_path: Path) -> None:
    study, _ = known_study
    page = write_report(study, tmp_path / "r.html").read_text()
    for key in ("pareto", "allocation", "task-accuracy", "hypervolume"):
        assert f'id="mtlsearch-{key}"' in page
    assert not re.search(r"<script[^>]*\ssrc=", page)  # plotly.js inline, once
    assert page.count("Plotly=") <= 1 or page.count("plotly.js v") == 1
    assert not re.search(r"<link[^>]*href=\"https?:", page) and "@import" not in page
    assert "fonts.googleapis" not in page and "cdn.plot.ly" not in page.replace("https://cdn.plot.ly", "")


def test_labels_of_the_baselines_on_the_budget_line_do_not_overlap(known_study) -> None:
    study, _ = known_study
    fig = pareto_figure(pareto_info(study))
    positions = {t.name: t.textposition for t in fig.data if t.name in BASELINES}
    assert set(positions) == set(BASELINES) and len(set(positions.values())) == len(BASELINES)


def test_the_hypervolume_axis_shows_the_noise_and_titles_are_short(known_study) -> None:
    from mtlsearch._report import report_figures

    study, settings = known_study
    frame = trials_frame(study)
    flat = hypervolume_info(study, frame, settings)._replace(hypervolume=[0.841, 0.8415, 0.842], noise=0.02)
    low, high = flat.y_range()
    assert high - low >= 4 * 0.02 and low <= 0.841 and high >= 0.842  # a change of 0.001 is not a cliff
    low, high = flat._replace(noise=None).y_range()
    assert high - low >= 0.05
    for key, figure in report_figures(study).items():
        assert len(figure.layout.title.text) <= 40, key  # fits optuna-dashboard's half-width card
