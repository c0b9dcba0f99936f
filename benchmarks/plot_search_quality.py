"""The pictures of docs/search-quality.md, from the JSON the search-quality benchmarks wrote.

    python benchmarks/plot_search_quality.py --out docs/img [--kind "x86_64 AVX512 AuthenticAMD" [--suffix=-amd]]

Writes one self-contained HTML per figure next to a PNG drawn by headless Chromium (when
``chromium`` is on the PATH). The control's pictures (section C: ``search-quality-fidelity``,
``-samplers``, ``-front``, ``-early-stop``) come from the fashion-domains runs; fashion-mux's
from a random start (section 4: ``search-quality-mux-samplers``, ``-mux-front``) and from the
default's pretrained start (``-mux-pretrained-samplers``, ``-front``) from the runs of one kind
of CPU (this machine's unless ``--kind`` names another), since a run on another kind is
another draw of the objective.
``--suffix`` draws only fashion-mux's figures, with the suffix on their names, so that a second
kind's pictures lie beside the first's. The last line names the files written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from _quality import RESULTS, cpu_kind

COLORS = {"tpe": "#d62728", "random": "#7f7f7f", "nsga2": "#1f77b4", "gp": "#2ca02c"}


def fidelity_figure(data: dict) -> go.Figure:
    frame = pd.DataFrame(data["rows"])
    means = frame.pivot_table(index="candidate", columns="fidelity", values="accuracy", aggfunc="mean")
    ref = data["reference"]
    proxies = [f for f in data["spearman"]]
    fig = make_subplots(rows=1, cols=len(proxies), subplot_titles=[f"{f}: Spearman {data['spearman'][f]:.2f}" for f in proxies])
    for i, fid in enumerate(proxies, start=1):
        fig.add_trace(go.Scatter(
            x=means[fid], y=means[ref], mode="markers+text", text=[c.replace("searched", "s") for c in means.index],
            textposition="top center", textfont={"size": 9}, marker={"size": 9, "color": "#d62728"}, showlegend=False,
        ), row=1, col=i)  # fmt: skip
        fig.update_xaxes(title_text=f"mean val accuracy at {fid}", row=1, col=i)
    fig.update_yaxes(title_text=f"at {ref} (reference)", row=1, col=1)
    fig.update_layout(title=f"Brief training against the reference {ref}: 12 candidates, seed-mean", template="plotly_white", height=460, width=1250)
    return fig


def hypervolume_figure(runs: dict, title: str, x: str = "trials") -> go.Figure:
    fig = go.Figure()
    for name, seeds in runs.items():
        color = COLORS.get(name.split("+")[0], "#9467bd") if "+" not in name else "#9467bd"
        for r in seeds:
            hv = r["hypervolume"]
            xs = list(range(1, len(hv) + 1))
            fig.add_trace(go.Scatter(x=xs, y=hv, mode="lines", line={"color": color, "width": 1, "shape": "hv"}, opacity=0.35, showlegend=False, hoverinfo="skip"))
        length = max(len(r["hypervolume"]) for r in seeds)
        mean = [statistics.fmean(r["hypervolume"][min(i, len(r["hypervolume"]) - 1)] for r in seeds) for i in range(length)]
        stalled = sum(bool(r.get("stalled")) for r in seeds)
        label = name + (f" ({stalled} of {len(seeds)} runs stalled)" if stalled else "")
        fig.add_trace(go.Scatter(x=list(range(1, length + 1)), y=mean, mode="lines", name=label, line={"color": color, "width": 3, "shape": "hv"}))
    if "random" in runs:
        target = statistics.fmean(r["hypervolume"][-1] for r in runs["random"])
        fig.add_hline(y=target, line_dash="dash", line_color="#555", annotation_text="random search after all its trials (mean)")
    fig.update_layout(title=title, template="plotly_white", height=480, width=1000, xaxis={"title": "trained trials (the 4 baselines first)"},
                      yaxis={"title": "hypervolume (accuracy 0-1 × params shared..budget)"}, legend={"orientation": "h", "y": -0.2})  # fmt: skip
    return fig


def kept_runs() -> dict[tuple[str, str, str], dict[str, list[dict]]]:
    """Every kept sampler run, grouped by (benchmark, fidelity, CPU kind) and then by sampler.
    Runs kept before the benchmark or the kind was in their file name are the control's (no
    ``dataset``) and of an unrecorded kind."""
    groups: dict[tuple[str, str, str], dict[str, list[dict]]] = {}
    for path in sorted((RESULTS / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        marker = f"-seed{run['seed']}-"
        kind = path.stem.split(marker, 1)[1].replace("-", " ") if marker in path.stem else "unrecorded"
        key = (run.get("dataset") or "fashion-domains", run["fidelity"], kind)
        groups.setdefault(key, {}).setdefault(run["name"], []).append(run)
    return groups


def _trained(trial: dict) -> tuple[float, float] | None:
    """``(params, accuracy)`` of a trained trial as a kept run records it (``kind`` and the two
    values; runs kept before that: ``state`` and ``values``), else None."""
    if trial.get("kind") == "trained":
        return trial["params"], trial["accuracy"]
    if trial.get("state") == "COMPLETE":
        return trial["values"][1], trial["values"][0]
    return None


def front_figure(runs: dict, title: str) -> go.Figure:
    """Every trained trial of every sampler run: what the front looks like."""
    symbols = {"shared": "square", "bottom-specific": "triangle-down", "top-specific": "triangle-up", "random": "diamond"}
    fig = go.Figure()
    for name, seeds in runs.items():
        points = [(*_trained(t), r["seed"], t["number"]) for r in seeds for t in r["trials"] if _trained(t) and t["strategy"] == "search"]
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="markers", name=name, opacity=0.7,
                                 marker={"color": COLORS.get(name, "#9467bd"), "size": 7},
                                 hovertext=[f"{name} seed {p[2]} trial {p[3]}" for p in points], hoverinfo="text+x+y"))  # fmt: skip
    first = next(iter(runs.values()))[0]
    shown: set[str] = set()
    for t in first["trials"]:
        if _trained(t) and t["strategy"] in symbols and t["strategy"] not in shown:
            shown.add(t["strategy"])
            params, accuracy = _trained(t)  # type: ignore[misc]
            fig.add_trace(go.Scatter(x=[params], y=[accuracy], mode="markers+text", text=[t["strategy"]], textposition="bottom center",
                                     name=t["strategy"], marker={"symbol": symbols[t["strategy"]], "size": 14, "color": "black"}))  # fmt: skip
    fig.update_layout(title=title, template="plotly_white",
                      height=520, width=1000, xaxis={"title": "parameters (shared + every task's own)"}, yaxis={"title": "mean validation accuracy"})  # fmt: skip
    return fig


def early_stop_figure(runs: dict) -> go.Figure:
    fig = go.Figure()
    for name, seeds in runs.items():
        color = "#9467bd" if "early" in name else "#d62728"
        for r in seeds:
            fig.add_trace(go.Scatter(x=[r.get("relative_cost") or 1.0], y=[r["hypervolume"][-1]], mode="markers+text", text=[f"seed {r['seed']}"],
                                     textposition="top center", marker={"size": 12, "color": color}, name=name, showlegend=r is seeds[0]))  # fmt: skip
    fig.update_layout(title="Early stopping: final hypervolume against training cost (each point one 40-trial TPE study)", template="plotly_white",
                      height=440, width=1000, xaxis={"title": "training cost per candidate, relative to training every candidate to the end"}, yaxis={"title": "hypervolume after 40 trials"})  # fmt: skip
    return fig


def shoot(html: Path, png: Path, width: int, height: int) -> bool:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return False
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={width},{height}", "--virtual-time-budget=10000",
                        f"--screenshot={png}", f"file://{html.resolve()}"], capture_output=True, timeout=120, check=False)  # fmt: skip
    return png.exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--kind", default=None, help="the CPU kind of the fashion-mux runs to draw (default: this machine's)")
    parser.add_argument("--suffix", default="", help="draw only fashion-mux's figures, with this after their names (e.g. --suffix=-amd)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    figures = {}
    if (RESULTS / "proxy_fidelity.json").exists() and not args.suffix:
        figures["fidelity"] = fidelity_figure(json.loads((RESULTS / "proxy_fidelity.json").read_text()))
    groups = kept_runs()
    kind = args.kind or cpu_kind()
    for (dataset, fidelity, run_kind), runs in sorted(groups.items()):
        searched = {k: v for k, v in runs.items() if "early-stop" not in k}
        if dataset == "fashion-domains" and not args.suffix:
            prefix, where = "", "fashion-domains (the control)"
        elif dataset == "fashion-mux" and run_kind == kind:
            prefix, where = "mux-", f"fashion-mux from a random start, {kind}"
        elif dataset.startswith("fashion-mux-weights-") and run_kind == kind:
            prefix, where = "mux-pretrained-", f"fashion-mux from the pretrained start (embedded), {kind}"
        else:
            continue
        if searched:
            seeds = sorted({len(v) for v in searched.values()})
            figures[prefix + "samplers"] = hypervolume_figure(
                searched, f"Hypervolume against trained trials: {where}<br><sup>budget 0.1, {fidelity}, {'/'.join(map(str, seeds))} runs a sampler (thin: one run; thick: their mean)</sup>"
            )
            figures[prefix + "front"] = front_figure(searched, f"Every trained candidate of every run: {where}<br><sup>budget 0.1, {fidelity}, training seed 0</sup>")
        stopping = {k: v for k, v in runs.items() if "early-stop" in k}
        if stopping and "tpe" in runs:
            figures[prefix + "early-stop"] = early_stop_figure({"tpe": runs["tpe"], **stopping})
    written = []
    for name, fig in figures.items():
        html = args.out / f"search-quality-{name}{args.suffix}.html"
        fig.write_html(html, include_plotlyjs="inline", config={"staticPlot": True})
        png = html.with_suffix(".png")
        if shoot(html, png, int(fig.layout.width or 1000), int(fig.layout.height or 480)):
            html.unlink()
            written.append(str(png))
        else:
            written.append(str(html))
    print("written=" + ",".join(written))


if __name__ == "__main__":
    main()
