"""The report: a study's data (``_results``) drawn (``_figures``) into one self-contained HTML
file, plotly.js embedded once, that opens offline."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mtlsearch._figures import (
    allocation_figure,
    allocation_info,
    hypervolume_figure,
    hypervolume_info,
    pareto_figure,
    task_accuracy_figure,
    task_accuracy_frame,
)
from mtlsearch._results import TASK_PREFIX, ParetoInfo, pareto_info, result_notes, summary_table, trials_frame
from mtlsearch._study import stored_settings, study_spec
from mtlsearch.errors import writing

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    import plotly.graph_objects as go


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
    frame = trials_frame(study) if frame is None else frame
    info = pareto_info(study, frame) if info is None else info
    figures = {"pareto": pareto_figure(info, title="Accuracy against parameters")}
    settings = stored_settings(study)
    if settings is not None and len(info.trained):
        figures["allocation"] = allocation_figure(allocation_info(info, settings, study_spec(study, settings)))
        figures["task-accuracy"] = task_accuracy_figure(task_accuracy_frame(info))
        figures["hypervolume"] = hypervolume_figure(hypervolume_info(study, frame, settings))
    return figures


OUTPUTS = Path("mtlsearch-report")  # where reports and exports go unless --out says otherwise
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(study_name: str) -> str:
    """A study's name as a file name: separators, markup and control characters become ``_``,
    no leading dot (no hidden file, no ``..``), at most 120 characters, never empty."""
    name = re.sub(r"_+", "_", re.sub(r"\.\.+", "_", _UNSAFE.sub("_", study_name))).lstrip(".") or "study"
    return name[:120]


def output_path(out: Path | None, study_name: str, suffix: str) -> Path:
    """The one rule for where a study's outputs go: ``--out`` a file with this suffix is used as
    it is; ``--out`` a folder (default ``mtlsearch-report/``) gets ``<study><suffix>`` in it, the
    study's name made safe, so a name never chooses where the file lands."""
    if out is not None and out.suffix == suffix:
        return out
    return (out or OUTPUTS) / f"{safe_name(study_name)}{suffix}"


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
            f"{settings.budget:g} ({settings.granularity} units), {settings.fidelity.describe()}, seed {settings.seed}."
        )
    counts = f"{len(info.trained)} trained candidates" + (f", {len(info.infeasible)} over budget (never trained)." if len(info.infeasible) else ".")
    drawn = [fig.to_html(full_html=False, include_plotlyjs=i == 0, div_id=f"mtlsearch-{key}") for i, (key, fig) in enumerate(figures.items())]
    table = _table_html(summary_table(info)) if len(info.trained) else "<p>No trained trial yet.</p>"
    notes = "".join(f"<p>{html.escape(n)}</p>" for n in result_notes(study, info))
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
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    return path
