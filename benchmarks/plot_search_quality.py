"""The pictures of docs/search-quality.md, from the JSON the search-quality benchmarks wrote.

    python benchmarks/plot_search_quality.py --out docs/img

Writes one self-contained HTML per figure next to a PNG drawn by headless Chromium (when
``chromium`` is on the PATH). The last line names the files written.
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

from _quality import RESULTS

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


def front_figure(runs: dict) -> go.Figure:
    """Every trained trial of every sampler run: what the front looks like."""
    symbols = {"shared": "square", "bottom-specific": "triangle-down", "top-specific": "triangle-up", "random": "diamond"}
    fig = go.Figure()
    for name, seeds in runs.items():
        points = [(t["values"][1], t["values"][0], r["seed"], t["number"]) for r in seeds for t in r["trials"]
                  if t["state"] == "COMPLETE" and t["strategy"] == "search"]  # fmt: skip
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="markers", name=name, opacity=0.7,
                                 marker={"color": COLORS.get(name, "#9467bd"), "size": 7},
                                 hovertext=[f"{name} seed {p[2]} trial {p[3]}" for p in points], hoverinfo="text+x+y"))  # fmt: skip
    first = next(iter(runs.values()))[0]
    shown: set[str] = set()
    for t in first["trials"]:
        if t["state"] == "COMPLETE" and t["strategy"] in symbols and t["strategy"] not in shown:
            shown.add(t["strategy"])
            fig.add_trace(go.Scatter(x=[t["values"][1]], y=[t["values"][0]], mode="markers+text", text=[t["strategy"]], textposition="bottom center",
                                     name=t["strategy"], marker={"symbol": symbols[t["strategy"]], "size": 14, "color": "black"}))  # fmt: skip
    fig.update_layout(title=f"Every trained candidate of every run (budget 0.1, {first['fidelity']}, training seed 0)", template="plotly_white",
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
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    figures = {}
    if (RESULTS / "proxy_fidelity.json").exists():
        figures["fidelity"] = fidelity_figure(json.loads((RESULTS / "proxy_fidelity.json").read_text()))
    runs: dict[str, list[dict]] = {}
    for path in sorted((RESULTS / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        runs.setdefault(run["name"], []).append(run)
    searched = {k: v for k, v in runs.items() if "early-stop" not in k}
    if searched:
        fidelity = next(iter(searched.values()))[0]["fidelity"]
        figures["samplers"] = hypervolume_figure(searched, f"Hypervolume against trained trials, budget 0.1, {fidelity} (thin: one seed; thick: mean)")
        figures["front"] = front_figure(searched)
    stopping = {k: v for k, v in runs.items() if "early-stop" in k}
    if stopping and "tpe" in runs:
        figures["early-stop"] = early_stop_figure({"tpe": runs["tpe"], **stopping})
    written = []
    for name, fig in figures.items():
        html = args.out / f"search-quality-{name}.html"
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
