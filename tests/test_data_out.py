"""Data out: `studies`, `show`, `export` from the command line."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import filled_study, run_cli
from mtlsearch._storage import open_storage
from mtlsearch._study import create_or_load


@pytest.fixture(scope="module")
def stored(tiny_settings, tmp_path_factory):
    settings, _ = tiny_settings
    folder = tmp_path_factory.mktemp("out")
    url, study = filled_study(settings, folder, "known", trials=16)
    create_or_load(open_storage(url), "empty", settings)
    return url, study, settings, folder


@pytest.mark.parametrize("fmt, read", [("csv", pd.read_csv), ("parquet", pd.read_parquet), ("json", pd.read_json)])
def test_export_round_trips_through_pandas(stored, fmt, read) -> None:
    url, study, settings, folder = stored
    out = folder / f"trials.{fmt}"
    result = run_cli("export", "--study-name", "known", "--storage", url, "--format", fmt, "--out", str(out), cwd=folder)
    assert result.returncode == 0, result.stderr
    table = read(out)
    assert len(table) == len(study.trials) and list(table["trial"]) == list(range(len(study.trials)))
    assert {f"accuracy.{t}" for t in settings.tasks} <= set(table.columns)
    assert {"allocation.conv1.0", "allocation.layer4.1.conv2", "params", "constraint", "state", "strategy"} <= set(table.columns)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    row = table.set_index("trial").loc[complete[0].number]
    assert row["accuracy"] == pytest.approx(complete[0].values[0])
    assert row[f"accuracy.{settings.tasks[0]}"] == pytest.approx(complete[0].user_attrs["task_accuracy"][settings.tasks[0]])
    assert row["strategy"] == "shared" and row["state"] == "COMPLETE"
    assert set(table["state"]) == {"COMPLETE"}  # every proposal fits the budget: none is PRUNED
    assert (table["constraint"] <= 0).all()


def test_export_rejects_bad_input(stored) -> None:
    url, _, _, folder = stored
    bad = run_cli("export", "--study-name", "known", "--storage", url, "--format", "xlsx", "--out", "x", cwd=folder)
    assert bad.returncode == 2 and bad.stderr == "error: unknown export format 'xlsx': use one of csv, parquet, json\n"
    nested = run_cli("export", "--study-name", "known", "--storage", url, "--out", "new/dir/t.csv", cwd=folder)
    assert nested.returncode == 0 and (folder / "new" / "dir" / "t.csv").is_file()  # folders are made, as for the report
    default = run_cli("export", "--study-name", "known", "--storage", url, cwd=folder)
    assert default.returncode == 0 and (folder / "mtlsearch-report" / "known.csv").is_file()  # the one rule for outputs
    ambiguous = run_cli("export", "--storage", url, "--out", "t.csv", cwd=folder)
    assert ambiguous.returncode == 2 and "pass --study-name" in ambiguous.stderr


def test_studies_lists_settings_and_counts(stored) -> None:
    url, study, _, folder = stored
    result = run_cli("studies", "--storage", url, cwd=folder)
    assert result.returncode == 0, result.stderr
    known = next(line for line in result.stdout.splitlines() if "known" in line)
    trained = sum(t.state.name == "COMPLETE" for t in study.trials)
    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    best = max(t.values[0] for t in study.trials if t.values)
    cells = [c.strip() for c in known.split("│") if c.strip()]
    assert cells[:3] == ["known", "0.1", "resnet18-narrow"]
    assert cells[4:6] == [str(trained), str(pruned)] and cells[-1] == f"{best:.4f}"
    assert "empty" in result.stdout


def test_show_prints_a_candidate_in_full(stored) -> None:
    url, study, settings, folder = stored
    result = run_cli("show", "--study-name", "known", "--storage", url, "--trial", "1", cwd=folder)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "trial 1 of known · COMPLETE · bottom-specific" in out
    assert f"{study.trials[1].user_attrs['params']:,}" in out
    first = next(line for line in out.splitlines() if "│ conv1.0 " in line)
    assert "1.000" in first and "8/8" in first  # bottom-specific owns the whole first conv (layer units)
    for task, accuracy in study.trials[1].user_attrs["task_accuracy"].items():
        assert f"{accuracy:.4f}" in out and task in out
    missing = run_cli("show", "--study-name", "known", "--storage", url, "--trial", "999", cwd=folder)
    assert missing.returncode == 2
    assert missing.stderr == f"error: study 'known' has trials 0 to {len(study.trials) - 1}, not 999: fix --trial\n"


def test_reading_results_needs_no_torch(stored) -> None:
    import subprocess
    import sys

    url, _, _, folder = stored
    code = (
        "import sys\nfrom mtlsearch.cli import main\n"
        f"sys.argv = ['mtlsearch', 'report', '--study-name', 'known', '--storage', {url!r}, '--out', 'nt.html']\n"
        "try:\n main()\nexcept SystemExit as e:\n assert not e.code, e.code\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=folder, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"  # the study's stored shape table is enough


def test_a_worker_whose_timm_builds_another_backbone_is_refused(stored) -> None:
    from mtlsearch._schema import SHAPES_ATTR

    url, study, settings, folder = stored
    storage = open_storage(url)
    other, _ = create_or_load(storage, "tampered", settings)
    shapes = storage.get_study_system_attrs(other._study_id)[SHAPES_ATTR]
    shapes["convs"][0]["out_channels"] += 1  # as if timm had changed the stem
    storage.set_study_system_attr(other._study_id, SHAPES_ATTR, shapes)
    result = run_cli("worker", "--study-name", "tampered", "--storage", url, cwd=folder)
    assert result.returncode == 2
    assert "builds resnet18-narrow with other layers" in result.stderr and result.stderr.count("\n") == 1


def test_a_study_made_on_another_build_of_the_embedded_benchmark_is_refused(stored) -> None:
    # a new mtlsearch that rebuilt the embedded file would score new trials on other images
    from mtlsearch._schema import DATA_ATTR
    from mtlsearch.datasets import embedded_digest
    from mtlsearch.errors import UsageError

    url, study, settings, folder = stored
    storage = open_storage(url)
    other, _ = create_or_load(storage, "rebuilt", settings)
    assert storage.get_study_system_attrs(other._study_id)[DATA_ATTR] == embedded_digest(settings.dataset)
    storage.set_study_system_attr(other._study_id, DATA_ATTR, "0123456789ab")  # as if made by an mtlsearch with another file
    trials = len(other.trials)
    for command in (("worker",), ("train", "--strategy", "shared", "--out", "runs/shared")):
        result = run_cli(*command, "--study-name", "rebuilt", "--storage", url, cwd=folder)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert f"created on build 0123456789ab of the embedded benchmark {settings.dataset}" in result.stderr
        assert f"ships build {embedded_digest(settings.dataset)}" in result.stderr
    with pytest.raises(UsageError, match="resume it with the mtlsearch version that created it"):
        create_or_load(storage, "rebuilt", settings)  # what run and create do on an existing study
    assert len(other.trials) == trials and not (folder / "runs").exists()
    create_or_load(storage, "known", settings)  # a study made on this build still resumes
