"""optuna-dashboard: the report's figures and a summary note pushed into the study, and the server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtlsearch._report import report_figures
from mtlsearch._results import TASK_PREFIX, ParetoInfo, pareto_info, result_notes, summary_table, trials_frame
from mtlsearch._study import stored_settings
from mtlsearch.errors import UsageError

if TYPE_CHECKING:
    import optuna

GRAPH_PREFIX = "mtlsearch-"  # graph object ids: mtlsearch-pareto, mtlsearch-allocation, ...
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def summary_note(study: optuna.Study, info: ParetoInfo) -> str:
    """Markdown: what was searched, and the best candidates against the baselines."""
    settings = stored_settings(study)
    lines = [f"## mtlsearch · {study.study_name}", ""]
    if settings is not None:
        lines += [
            f"{settings.backbone} on {', '.join(settings.tasks)}; budget {settings.budget:g} "
            f"({settings.granularity} units); {settings.fidelity.describe()}.",
            "",
        ]
    lines += [f"{len(info.trained)} trained candidates, {len(info.infeasible)} over budget (never trained).", ""]
    if not len(info.trained):
        return "\n".join(lines + ["No trained trial yet."])
    table = summary_table(info)
    reference = info.baselines.set_index("strategy")["accuracy"].get("bottom-specific")
    tasks = [c for c in table.columns if c.startswith(TASK_PREFIX)]
    header = ["trial", "strategy", "params", "specific", "accuracy", "vs bottom-specific", *[t.removeprefix(TASK_PREFIX) for t in tasks], "front"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.to_dict("records"):
        delta = "" if reference is None else f"{row['accuracy'] - reference:+.4f}"
        cells = [str(row["trial"]), row["strategy"], f"{row['params']:,.0f}", f"{row['specific_fraction']:.3f}",
                 f"{row['accuracy']:.4f}", delta, *[f"{row[t]:.3f}" for t in tasks], "yes" if row["pareto"] else ""]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    searched = info.front[~info.front["strategy"].isin(info.baselines["strategy"])]
    if len(searched) and reference is not None:
        best = searched.loc[searched["accuracy"].idxmax()]
        lines += ["", f"Best searched candidate: trial {best['trial']}, accuracy {best['accuracy']:.4f} "
                  f"({best['accuracy'] - reference:+.4f} against bottom-specific) with {best['params']:,.0f} parameters."]  # fmt: skip
    lines += [line for note in result_notes(study, info) for line in ("", note)]
    return "\n".join(lines)


def push_to_dashboard(study: optuna.Study) -> list[str]:
    """Save the report's figures and the summary note in the study; returns the graph ids."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    frame = trials_frame(study)
    info = pareto_info(study, frame)
    ids = []
    for key, figure in report_figures(study, info, frame).items():
        ids.append(save_plotly_graph_object(study, figure, graph_object_id=GRAPH_PREFIX + key))
    save_note(study, summary_note(study, info))
    return ids


def serve(storage: optuna.storages.BaseStorage, *, host: str, port: int) -> None:
    """optuna-dashboard on ``storage`` until Ctrl-C; a port in use is a ``UsageError``."""
    import socket

    from optuna_dashboard import run_server

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port or --host") from None
    run_server(storage, host=host, port=port)
