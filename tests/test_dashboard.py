"""optuna-dashboard on a study: its API, the pushed figures and note, and a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import filled_study, free_port, run_cli, start_cli
from mtlsearch._storage import open_storage
from mtlsearch._study import create_or_load

pytestmark = pytest.mark.slow  # servers and a browser

GRAPHS = {"mtlsearch-pareto", "mtlsearch-allocation", "mtlsearch-task-accuracy", "mtlsearch-hypervolume"}
CHROMIUM = ("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--window-size=1400,1800", "--virtual-time-budget=20000")  # fmt: skip


def _get(url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture(scope="module")
def served(tiny_settings, tmp_path_factory):
    """A study with known trials, reported (figures pushed), served by ``mtlsearch dashboard``."""
    folder = tmp_path_factory.mktemp("dash")
    url, study = filled_study(tiny_settings[0], folder, "dash-study", trials=20)
    reported = run_cli("report", "--storage", url, "--out", "r.html", cwd=folder)
    assert reported.returncode == 0, reported.stderr
    assert "saved for optuna-dashboard" in reported.stdout
    port = free_port()
    server = start_cli("dashboard", "--storage", url, "--port", str(port), cwd=folder)
    try:
        _get(f"http://127.0.0.1:{port}/api/studies")
        yield f"http://127.0.0.1:{port}", study, folder
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_the_api_shows_metric_names_constraints_figures_and_note(served) -> None:
    base, study, _ = served
    (summary,) = _get(f"{base}/api/studies")["study_summaries"]
    assert summary["study_name"] == "dash-study"
    detail = _get(f"{base}/api/studies/{summary['study_id']}")
    assert detail["objective_names"] == ["accuracy", "params"]
    assert {g["id"] for g in detail["plotly_graph_objects"]} == GRAPHS
    pareto = next(json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"] if g["id"] == "mtlsearch-pareto")
    assert any(t.get("name") == "Pareto front" for t in pareto["data"])
    constraints = {t["number"]: t["constraints"] for t in detail["trials"]}
    assert len(constraints) == len(study.trials)  # every trial shows its constraint: all feasible, by construction
    assert all(constraints[t.number][0] <= 0 for t in study.trials)
    assert "bottom-specific" in detail["note"]["body"] and "| trial | strategy |" in detail["note"]["body"]


def test_chromium_shows_the_study_and_the_pushed_figures(served, tmp_path: Path) -> None:
    from PIL import Image

    assert shutil.which("chromium"), "Debian's chromium is needed: apt-get install chromium (.ci/run does)"
    base, study, folder = served
    page = f"{base}/dashboard/studies/{study._study_id}"
    dom = subprocess.run([*CHROMIUM, f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom", page],
                         capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    assert "dash-study" in dom
    assert "accuracy" in dom and "params" in dom  # the dashboard's own plots use the metric names
    for graph in GRAPHS:
        assert f'id="user-defined-plot:{graph}"' in dom
    shot = tmp_path / "dashboard.png"
    subprocess.run([*CHROMIUM, f"--user-data-dir={tmp_path / 'p2'}", f"--screenshot={shot}", page], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (1800, 1400) and pixels.std() > 10  # drawn, not blank
    # the report renders its figures with the network cut off
    offline = subprocess.run([*CHROMIUM, f"--user-data-dir={tmp_path / 'p3'}", "--host-resolver-rules=MAP * ~NOTFOUND",
                              "--dump-dom", (folder / "r.html").as_uri()], capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    assert offline.count('class="main-svg"') >= 4  # plotly drew every figure


def test_dashboard_warns_off_loopback_and_refuses_a_busy_port(tiny_settings, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    create_or_load(open_storage(url), "s", tiny_settings[0])
    port = free_port()
    server = start_cli("dashboard", "--storage", url, "--host", "0.0.0.0", "--port", str(port), cwd=tmp_path)
    try:
        _get(f"http://127.0.0.1:{port}/api/studies")
        busy = run_cli("dashboard", "--storage", url, "--port", str(port), cwd=tmp_path)
        assert busy.returncode == 2 and busy.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "no authentication" in err
