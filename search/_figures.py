"""The report's other pictures: where the budget went, what each task got, how the search
progressed. Each has its data function (tested) and its drawing function (not)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from mtlsearch._report import TASK_PREFIX, ParetoInfo, reference_params
from mtlsearch._settings import Settings
from mtlsearch._study import study_spec
from mtlsearch.models import BASELINES, BackboneSpec, specific_filters

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    import plotly.graph_objects as go

BASELINE_ORDER = (*BASELINES, "independent")


def _label(row: dict[str, object]) -> str:
    return f"{row['strategy']} #{row['trial']}" if row["strategy"] in BASELINE_ORDER else f"front #{row['trial']}"


def shown_candidates(info: ParetoInfo) -> pd.DataFrame:
    """The baselines (in the paper's order) then the searched candidates on the front, by params."""
    import pandas as pd

    order = {s: i for i, s in enumerate(BASELINE_ORDER)}
    baselines = info.baselines.assign(_o=info.baselines["strategy"].map(order)).sort_values("_o").drop(columns="_o")
    searched = info.front[~info.front["strategy"].isin(BASELINE_ORDER)].sort_values("params")
    rows = pd.concat([baselines, searched], ignore_index=True)
    return rows.assign(label=[_label(r) for r in rows.to_dict("records")])


class AllocationInfo(NamedTuple):
    units: list[str]  # input side first
    labels: list[str]  # one per candidate row
    fractions: list[list[float]]  # [row][unit]: task-specific filters over filters
    filters: list[list[tuple[int, int]]]  # [row][unit]: (task-specific filters, filters)


def allocation_info(info: ParetoInfo, settings: Settings, spec: BackboneSpec) -> AllocationInfo:
    unit_convs = spec.unit_convs(settings.granularity)  # type: ignore[arg-type]
    rows = shown_candidates(info)
    fractions, filters = [], []
    for allocation in rows["allocation"]:
        counts = [
            (sum(specific_filters(c, allocation.get(u, 0.0)) for c in convs), sum(c.out_channels for c in convs))
            for u, convs in unit_convs.items()
        ]
        filters.append(counts)
        fractions.append([k / n if n else 0.0 for k, n in counts])
    return AllocationInfo(list(unit_convs), list(rows["label"]), fractions, filters)


def allocation_figure(data: AllocationInfo) -> go.Figure:
    import plotly.graph_objects as go

    hover = [
        [f"{label}<br>{unit}: {k}/{n} filters task-specific ({k / n if n else 0:.1%})" for unit, (k, n) in zip(data.units, row)]
        for label, row in zip(data.labels, data.filters)
    ]
    top = max((max(r) for r in data.fractions), default=0.0)
    fig = go.Figure(go.Heatmap(
        z=data.fractions, x=data.units, y=data.labels, colorscale="Reds", zmin=0, zmax=max(top, 0.05),
        hovertext=hover, hoverinfo="text", colorbar={"title": "task-specific", "tickformat": ".0%"},
        xgap=1, ygap=1,
    ))  # fmt: skip
    fig.update_layout(
        title="Where the budget went: task-specific fraction per unit (input side left)",
        template="plotly_white", height=160 + 28 * len(data.labels),
        yaxis={"autorange": "reversed"}, xaxis={"title": "unit", "tickangle": -45},
    )  # fmt: skip
    return fig


def task_accuracy_frame(info: ParetoInfo) -> pd.DataFrame:
    """Long form: one row per (candidate, task) for the baselines and the front."""
    rows = shown_candidates(info)
    tasks = [c for c in rows.columns if c.startswith(TASK_PREFIX)]
    long = rows[["label", "trial", "strategy", *tasks]].melt(
        id_vars=["label", "trial", "strategy"], value_vars=tasks, var_name="task", value_name="task_accuracy"
    )
    long["task"] = long["task"].str.removeprefix(TASK_PREFIX)
    return long.rename(columns={"task_accuracy": "accuracy"})


def task_accuracy_figure(long: pd.DataFrame) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, group in long.groupby("label", sort=False):
        fig.add_trace(go.Bar(x=group["task"], y=group["accuracy"], name=str(label),
                             hovertemplate=f"{label}<br>%{{x}}: %{{y:.4f}}<extra></extra>"))  # fmt: skip
    low = float(long["accuracy"].min()) if len(long) else 0.0
    fig.update_layout(
        title="Validation accuracy per task: baselines and the Pareto front", barmode="group",
        template="plotly_white", height=440, yaxis={"title": "validation accuracy", "range": [max(0.0, low - 0.05), 1]},
        legend={"orientation": "h", "y": -0.2},
    )  # fmt: skip
    return fig


class HypervolumeInfo(NamedTuple):
    trained: list[int]  # 1, 2, ...: trained trials so far, in the order they finished
    trial: list[int]  # the trial that finished at each step
    hypervolume: list[float]  # normalised to [0, 1]
    reference_params: float  # the parameter count of a candidate that spends the whole budget
    shared_params: float  # the parameter count of the shared model (no task-specific filter)


def hypervolume_2d(points: list[tuple[float, float]], shared: float, reference: float) -> float:
    """Area dominated by ``(accuracy, params)`` points (maximise, minimise) inside the box
    accuracy in [0, 1], params in [shared, reference], as a fraction of the box."""
    inside = sorted((p, a) for a, p in points if p <= reference)
    area, best = 0.0, 0.0
    for i, (params, accuracy) in enumerate(inside):
        best = max(best, accuracy)
        right = inside[i + 1][0] if i + 1 < len(inside) else reference
        area += (right - params) * best
    span = reference - shared
    return area / span if span > 0 else (max((a for a, _ in points), default=0.0))


def hypervolume_info(study: optuna.Study, frame: pd.DataFrame, settings: Settings) -> HypervolumeInfo:
    """Hypervolume of the trained trials after each one finished (over-budget ones never count;
    one stopped by ``--early-stop`` counts as trained, as the worker counts it, and adds no point)."""
    shared, reference = reference_params(settings, study_spec(study, settings))
    finished = {t.number: t.datetime_complete for t in study.get_trials(deepcopy=False) if t.datetime_complete}
    trained = frame[frame["state"].isin(("COMPLETE", "PRUNED")) & frame["feasible"]]  # PRUNED and feasible: stopped early
    ordered = sorted(trained[["trial", "state", "accuracy", "params"]].itertuples(index=False), key=lambda r: (finished.get(r.trial), r.trial))
    points: list[tuple[float, float]] = []
    steps, numbers, volumes = [], [], []
    for i, row in enumerate(ordered, start=1):
        if row.state == "COMPLETE":
            points.append((float(row.accuracy), float(row.params)))
        steps.append(i)
        numbers.append(int(row.trial))
        volumes.append(hypervolume_2d(points, shared, reference))
    return HypervolumeInfo(steps, numbers, volumes, reference, shared)


def hypervolume_figure(data: HypervolumeInfo) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(
        x=data.trained, y=data.hypervolume, mode="lines+markers", line={"shape": "hv", "color": "#d62728"},
        customdata=data.trial, hovertemplate="%{x} trained (trial %{customdata})<br>hypervolume %{y:.4f}<extra></extra>",
    ))  # fmt: skip
    fig.update_layout(
        title="Hypervolume against trained trials (accuracy 0 to 1 × parameters from shared to the budget)",
        template="plotly_white", height=380, xaxis={"title": "trained trials"}, yaxis={"title": "hypervolume"},
    )  # fmt: skip
    return fig
