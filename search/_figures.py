"""The report's pictures: the Pareto front, where the budget went, what each task got, how the
search progressed. Each has its data function (tested) and its drawing function (not)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from mtlsearch._results import TASK_PREFIX, ParetoInfo, reference_params
from mtlsearch._settings import Settings
from mtlsearch._study import study_spec
from mtlsearch.models import BASELINES, BackboneSpec, specific_filters

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    import plotly.graph_objects as go

BASELINE_ORDER = (*BASELINES, "independent")
# the three strategies that fill the budget sit on one vertical line: each label on its own side
LABEL_POSITIONS = {"shared": "bottom center", "bottom-specific": "top left", "top-specific": "bottom left", "random": "middle right"}
SHORT_TITLES = {  # short enough for optuna-dashboard's half-width cards; the axes say the rest
    "allocation": "Where the budget went",
    "task-accuracy": "Accuracy per task",
    "hypervolume": "Hypervolume against trained trials",
}
MIN_SPAN = 0.05  # the hypervolume axis spans at least this, or four noises of a difference, whichever is larger


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


def pareto_figure(info: ParetoInfo, *, title: str = "") -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    strip = len(info.infeasible) > 0  # over-budget trials: none in a study of the current search space
    fig = make_subplots(
        rows=2 if strip else 1, cols=1, shared_xaxes=True, row_heights=[0.85, 0.15] if strip else None, vertical_spacing=0.04,
        subplot_titles=("", "over budget: never trained") if strip else None,
    )  # fmt: skip

    def hover(df: pd.DataFrame) -> list[str]:
        return [
            f"trial {r['trial']} · {r['strategy']}<br>accuracy {r['accuracy']:.4f}"
            f"<br>params {r['params']:,.0f}<br>specific {r['specific_fraction']:.3f}<br>"
            + "<br>".join(f"{k.removeprefix(TASK_PREFIX)}: {v:.3f}" for k, v in r.items() if k.startswith(TASK_PREFIX))
            + "<br>allocation: " + (", ".join(f"{u} {f:.2f}" for u, f in r["allocation"].items() if f > 0) or "all shared")
            for r in df.to_dict("records")
        ]

    searched = info.trained[~info.trained["strategy"].isin(BASELINES)]
    fig.add_trace(go.Scatter(
        x=searched["params"], y=searched["accuracy"], mode="markers", name="searched",
        marker={"color": "#7f9cc9", "size": 8}, hovertext=hover(searched), hoverinfo="text",
    ), row=1, col=1)  # fmt: skip
    fig.add_trace(go.Scatter(
        x=info.front["params"], y=info.front["accuracy"], mode="lines+markers", name="Pareto front",
        line={"color": "#d62728", "shape": "hv"}, marker={"size": 11, "color": "#d62728", "line": {"width": 1, "color": "black"}},
        hovertext=hover(info.front), hoverinfo="text",
    ), row=1, col=1)  # fmt: skip
    symbols = {"shared": "square", "bottom-specific": "triangle-down", "top-specific": "triangle-up", "random": "diamond"}
    for row in info.baselines.itertuples(index=False):
        fig.add_trace(go.Scatter(
            x=[row.params], y=[row.accuracy], mode="markers+text", name=row.strategy, text=[row.strategy],
            textposition=LABEL_POSITIONS.get(row.strategy, "bottom center"), marker={"symbol": symbols.get(row.strategy, "star"), "size": 14, "color": "#2ca02c", "line": {"width": 1, "color": "black"}},
            hovertext=hover(info.baselines[info.baselines["trial"] == row.trial]), hoverinfo="text",
        ), row=1, col=1)  # fmt: skip
    if strip:
        fig.add_trace(go.Scatter(
            x=info.infeasible["params"], y=[0] * len(info.infeasible), mode="markers", name="over budget",
            marker={"symbol": "x", "color": "#aaaaaa", "size": 7},
            hovertext=[f"trial {r.trial}: specific {r.specific_fraction:.3f}, not trained" for r in info.infeasible.itertuples(index=False)],
            hoverinfo="text",
        ), row=2, col=1)  # fmt: skip
    repeated = info.trained[info.trained["seeds"].notna()] if "seeds" in info.trained.columns else info.trained.iloc[0:0]
    if len(repeated):
        fig.add_trace(go.Scatter(
            x=repeated["params"], y=repeated["accuracy_mean"], mode="markers", name="mean ± std over seeds (--repeats)",
            error_y={"type": "data", "array": repeated["accuracy_std"], "visible": True, "color": "#444"},
            marker={"symbol": "line-ew-open", "size": 16, "color": "#444"},
            hovertext=[f"trial {r.trial}: {r.accuracy_mean:.4f} ± {r.accuracy_std:.4f} over {r.seeds:.0f} seeds" for r in repeated.itertuples(index=False)],
            hoverinfo="text",
        ), row=1, col=1)  # fmt: skip
    if info.budget_params is not None:
        fig.add_vline(x=info.budget_params, line_dash="dash", line_color="#555", annotation_text="budget", row=1, col=1)
    fig.update_yaxes(title_text="mean validation accuracy", row=1, col=1)
    if strip:
        fig.update_yaxes(visible=False, row=2, col=1)
    fig.update_xaxes(title_text="parameters (shared + every task's own)", row=2 if strip else 1, col=1)
    fig.update_layout(title=title, template="plotly_white", height=620, legend={"orientation": "h", "y": -0.15})
    return fig


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
        title=SHORT_TITLES["allocation"],
        template="plotly_white", height=160 + 28 * len(data.labels),
        yaxis={"autorange": "reversed"}, xaxis={"title": "unit (input side left): task-specific fraction of its filters", "tickangle": -45},
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
        title=SHORT_TITLES["task-accuracy"], barmode="group",
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
    noise: float | None = None  # the preset's noise of a difference in accuracy, when measured

    def y_range(self) -> tuple[float, float]:
        """The axis: the values with room around them, at least ``MIN_SPAN`` or four noises
        wide, so that a change within the noise does not look like a cliff."""
        low, high = (min(self.hypervolume), max(self.hypervolume)) if self.hypervolume else (0.0, 1.0)
        span = max(MIN_SPAN, 4 * (self.noise or 0.0), high - low)
        middle = (low + high) / 2
        bottom = max(0.0, middle - span / 2 - 0.1 * span)
        return bottom, min(1.0, bottom + 1.2 * span)


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
    trained = frame[frame["kind"].isin(("trained", "stopped"))] if len(frame) else frame  # what the worker's target counts
    ordered = sorted(trained[["trial", "kind", "accuracy", "params"]].itertuples(index=False), key=lambda r: (finished.get(r.trial), r.trial))
    points: list[tuple[float, float]] = []
    steps, numbers, volumes = [], [], []
    for i, row in enumerate(ordered, start=1):
        if row.kind == "trained":  # one stopped early adds a step, not a point
            points.append((float(row.accuracy), float(row.params)))
        steps.append(i)
        numbers.append(int(row.trial))
        volumes.append(hypervolume_2d(points, shared, reference))
    return HypervolumeInfo(steps, numbers, volumes, reference, shared, settings.noise)

def hypervolume_figure(data: HypervolumeInfo) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(
        x=data.trained, y=data.hypervolume, mode="lines+markers", line={"shape": "hv", "color": "#d62728"},
        customdata=data.trial, hovertemplate="%{x} trained (trial %{customdata})<br>hypervolume %{y:.4f}<extra></extra>",
    ))  # fmt: skip
    fig.update_layout(
        title=SHORT_TITLES["hypervolume"],
        template="plotly_white", height=380, xaxis={"title": "trained trials"},
        yaxis={"title": "hypervolume (accuracy × parameters, shared to budget)", "range": list(data.y_range())},
    )  # fmt: skip
    return fig
