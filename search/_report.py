"""The report: storage -> pandas frame -> Pareto data -> plotly figure -> self-contained HTML.

Data is computed first (``trials_frame``, ``pareto_info``) and drawn second, so tests check the
data, not pixels.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mtlsearch._settings import Settings
from mtlsearch._study import stored_settings, study_spec
from mtlsearch.models import BASELINES, BackboneSpec, count_params

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    import plotly.graph_objects as go

TASK_PREFIX = "acc:"


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per finished trial (repeats of an earlier allocation left out): strategy,
    accuracy, params, feasibility, per-task accuracy."""
    import pandas as pd
    from optuna.trial import TrialState

    from mtlsearch._repeats import repeats_of, spread

    front = {t.number for t in study.best_trials if "reused_from" not in t.user_attrs}
    repeats = repeats_of(study)
    rows = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        attrs = trial.user_attrs
        if "reused_from" in attrs:  # the same model as an earlier trial: one point, not two
            continue
        constraint = (trial.system_attrs.get("constraints") or [0.0])[0]
        row = {
            "trial": trial.number,
            "state": trial.state.name,
            "strategy": attrs.get("strategy", "search"),
            "accuracy": trial.values[0] if trial.values else float("nan"),
            "params": attrs.get("params"),
            "specific_fraction": attrs.get("specific_fraction"),
            "feasible": constraint <= 0,
            "pareto": trial.number in front,
            "train_seconds": attrs.get("train_seconds"),
            "allocation": attrs.get("allocation", {}),
        }
        if trial.number in repeats and trial.values:  # --repeats: the same candidate with other seeds
            row["seeds"], row["accuracy_mean"], row["accuracy_std"] = spread(trial.values[0], repeats[trial.number])
        row.update({TASK_PREFIX + k: v for k, v in attrs.get("task_accuracy", {}).items()})
        rows.append(row)
    columns = ["trial", "state", "strategy", "accuracy", "params", "specific_fraction", "feasible", "pareto", "train_seconds", "allocation"]
    return pd.DataFrame(rows, columns=None if rows else columns)


class ParetoInfo(NamedTuple):
    trained: pd.DataFrame  # feasible, trained trials
    front: pd.DataFrame  # the Pareto front among them, by params
    baselines: pd.DataFrame  # one row per baseline strategy trained
    infeasible: pd.DataFrame  # over budget, never trained
    budget_params: float | None  # parameter count at which the budget is spent


def pareto_info(study: optuna.Study, frame: pd.DataFrame | None = None) -> ParetoInfo:
    frame = trials_frame(study) if frame is None else frame
    trained = frame[(frame["state"] == "COMPLETE") & frame["feasible"]] if len(frame) else frame
    infeasible = frame[~frame["feasible"]] if len(frame) else frame
    front = trained[trained["pareto"]].sort_values("params") if len(trained) else trained
    baselines = trained[trained["strategy"].isin(BASELINES)].drop_duplicates("strategy") if len(trained) else trained
    settings = stored_settings(study)
    budget_params = None
    if settings is not None and settings.num_classes:
        budget_params = reference_params(settings, study_spec(study, settings))[1]
    return ParetoInfo(trained, front, baselines, infeasible, budget_params)


def reference_params(settings: Settings, spec: BackboneSpec) -> tuple[float, float]:
    """``(shared, at the budget)``: the parameter counts every feasible candidate lies between.

    A task-specific filter is counted once per task instead of once, so the total grows by
    ``(tasks - 1) x specific conv weights``; at the budget those are ``budget x conv weights``.
    """
    shared = count_params(spec, settings.num_classes, {}, settings.granularity).total  # type: ignore[arg-type]
    return float(shared), float(shared + (len(settings.num_classes) - 1) * settings.budget * spec.conv_params)


def summary_table(info: ParetoInfo, *, limit: int = 8) -> pd.DataFrame:
    """The baselines and the best searched candidates (front marked), best accuracy first."""
    import pandas as pd

    searched = info.trained[~info.trained["strategy"].isin(BASELINES)].nlargest(limit, "accuracy")
    table = pd.concat([info.baselines, searched]).sort_values("accuracy", ascending=False)
    task_cols = [c for c in table.columns if c.startswith(TASK_PREFIX)]
    spread_cols = ["seeds", "accuracy_mean", "accuracy_std"] if "seeds" in table.columns and table["seeds"].notna().any() else []
    return table[["trial", "strategy", "params", "specific_fraction", "accuracy", *spread_cols, *task_cols, "pareto"]]


def repeated_rows(info: ParetoInfo) -> list[dict]:
    """Trained trials with ``--repeats`` results: their mean and spread over seeds."""
    if "seeds" not in info.trained.columns:
        return []
    return info.trained[info.trained["seeds"].notna()].to_dict("records")


def pareto_figure(info: ParetoInfo, *, title: str = "") -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.85, 0.15], vertical_spacing=0.04,
        subplot_titles=("", "over budget: never trained"),
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
            textposition="bottom center", marker={"symbol": symbols.get(row.strategy, "star"), "size": 14, "color": "#2ca02c", "line": {"width": 1, "color": "black"}},
            hovertext=hover(info.baselines[info.baselines["trial"] == row.trial]), hoverinfo="text",
        ), row=1, col=1)  # fmt: skip
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
    fig.update_yaxes(visible=False, row=2, col=1)
    fig.update_xaxes(title_text="parameters (shared + every task's own)", row=2, col=1)
    fig.update_layout(title=title, template="plotly_white", height=620, legend={"orientation": "h", "y": -0.15})
    return fig


def _table_html(table: pd.DataFrame) -> str:
    import math

    def number(pattern: str):  # type: ignore[no-untyped-def]
        return lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else pattern.format(v)

    shown = table.rename(columns=lambda c: c.removeprefix(TASK_PREFIX))
    formats = {c: number("{:.4f}") for c in shown.columns if shown[c].dtype.kind == "f"}
    formats["params"] = number("{:,.0f}")
    if "seeds" in shown.columns:
        formats["seeds"] = number("{:.0f}")
    return shown.to_html(index=False, formatters=formats, border=0, classes="results")


def report_figures(study: optuna.Study, info: ParetoInfo | None = None, frame: pd.DataFrame | None = None) -> dict[str, go.Figure]:
    """The report's figures by id: the Pareto front, the allocation heatmap, per-task accuracy,
    hypervolume against trained trials (the last three once a trial is trained)."""
    from mtlsearch._figures import (
        allocation_figure,
        allocation_info,
        hypervolume_figure,
        hypervolume_info,
        task_accuracy_figure,
        task_accuracy_frame,
    )

    frame = trials_frame(study) if frame is None else frame
    info = pareto_info(study, frame) if info is None else info
    figures = {"pareto": pareto_figure(info, title="Accuracy against parameters")}
    settings = stored_settings(study)
    if settings is not None and len(info.trained):
        figures["allocation"] = allocation_figure(allocation_info(info, settings, study_spec(study, settings)))
        figures["task-accuracy"] = task_accuracy_figure(task_accuracy_frame(info))
        figures["hypervolume"] = hypervolume_figure(hypervolume_info(study, frame, settings))
    return figures


def write_report(study: optuna.Study, path: Path) -> Path:
    """A single HTML file with plotly.js embedded once: it opens offline."""
    settings = stored_settings(study)
    frame = trials_frame(study)
    info = pareto_info(study, frame)
    title = f"mtlsearch · {study.study_name}"
    figures = report_figures(study, info, frame)
    described = ""
    if settings is not None:
        described = (
            f"{settings.backbone} on {settings.dataset} ({', '.join(settings.tasks)}), budget "
            f"{settings.budget:g} ({settings.granularity} units), {settings.fidelity.epochs} epochs of "
            f"{settings.fidelity.train_size} images per task, seed {settings.seed}."
        )
    counts = f"{len(info.trained)} trained candidates, {len(info.infeasible)} over budget (never trained)."
    drawn = [fig.to_html(full_html=False, include_plotlyjs=i == 0, div_id=f"mtlsearch-{key}") for i, (key, fig) in enumerate(figures.items())]
    table = _table_html(summary_table(info)) if len(info.trained) else "<p>No trained trial yet.</p>"
    from mtlsearch._repeats import noise_notes

    notes = "".join(f"<p>{html.escape(n)}</p>" for n in noise_notes(repeated_rows(info))) if len(info.trained) > 1 else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}}
table.results{{border-collapse:collapse;font-size:14px}}table.results td,table.results th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(described)}</p><p>{html.escape(counts)}</p>
{drawn[0]}
<h2>Baselines and the best searched candidates</h2>
{table}
{notes}
{"".join(drawn[1:])}
</body></html>
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
