from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import run_cli, write_image_folder

TINY = ("--epochs", "1", "--train-size", "64", "--val-size", "200")  # scored on 200 validation images a task: the tests are not about accuracy


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _study(db: Path) -> optuna.Study:
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{db}")
    return optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{db}")


def test_help_does_not_import_torch(tmp_path: Path) -> None:
    code = "import sys; sys.argv=['mtlsearch','--help']\ntry:\n from mtlsearch.cli import main; main()\nexcept SystemExit: pass\nprint('torch' in sys.modules, 'optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "False False"


@pytest.mark.slow
def test_run_end_to_end_then_resume_then_report(tmp_path: Path) -> None:
    result = run_cli("run", *TINY, "--n-trials", "6", "--budget", "0.2", "--out", "rep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    db = tmp_path / "mtlsearch.db"
    study = _study(db)
    assert study.study_name == "embedded-resnet18-narrow-budget0.2"
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 6
    assert not study.get_trials(states=(TrialState.RUNNING,))
    report = tmp_path / "rep" / f"{study.study_name}.html"
    page = report.read_text()
    assert "<script src=\"http" not in page and "Pareto front" in page and "bottom-specific" in page
    assert "bottom-specific" in result.stdout and "vs bottom" in result.stdout
    # every candidate was scored on the same 200 validation images of each task, and the study says so
    assert study.user_attrs["settings"]["fidelity"]["val_size"] == 200
    assert "scored on 200 validation images per task" in " ".join(result.stdout.split()) and "scored on 200 validation images" in page
    for trial in complete:
        assert all(abs(a * 200 - round(a * 200)) < 1e-6 for a in trial.user_attrs["task_accuracy"].values())
    # the same command resumes: two more trained trials, baselines not enqueued again
    again = run_cli("run", *TINY, "--n-trials", "8", "--budget", "0.2", "--out", "rep", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resumed with 6 trained trials" in again.stdout
    study = _study(db)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 8
    assert sum(t.user_attrs.get("strategy") == "bottom-specific" for t in study.trials) == 1
    # the report command on the same storage
    rep = run_cli("report", "--storage", f"sqlite:///{db}", "--out", "r.html", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "r.html").stat().st_size > 1_000_000  # plotly.js is embedded
    assert "shared" in rep.stdout


@pytest.mark.slow
def test_optuna_storage_environment_variable(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    result = run_cli("run", *TINY, "--n-trials", "1", cwd=tmp_path, env={"OPTUNA_STORAGE": f"sqlite:///{db}"})
    assert result.returncode == 0, result.stderr
    assert len(_study(db).get_trials(states=(TrialState.COMPLETE,))) == 1


BAD_INPUT = [
    (("--budget", "1.5"), "--budget"),
    (("--budget", "-0.1"), "--budget"),
    (("--backbone", "resnet1000"), "unknown backbone"),
    (("--preset", "nope"), "unknown preset"),
    (("--preset", "missing.toml"), "does not exist"),
    (("--granularity", "pixel"), "granularity"),
    (("--data-root", "no-such-folder"), "does not exist"),
    (("--storage", "notaurl"), "malformed storage URL"),
    (("--storage", "postgresql+psycopg://postgres:secret@127.0.0.1:1/test"), "cannot reach storage"),
    (("--storage", "sqlite:////no/such/dir/x.db"), "does not exist"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_database_unchanged(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    db = tmp_path / "mtlsearch.db"
    before = _digest(db)
    result = run_cli("run", *TINY, "--n-trials", "1", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "secret" not in result.stderr
    assert _digest(db) == before


@pytest.mark.slow
def test_empty_image_folder_is_exit_2(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data", {"a": {"train": {"x": 3}, "test": {"x": 1}}})
    (data / "a" / "train" / "hollow").mkdir()
    result = run_cli("run", *TINY, "--data-root", str(data), cwd=tmp_path)
    assert result.returncode == 2 and "empty class folder" in result.stderr
    assert not (tmp_path / "mtlsearch.db").exists()


@pytest.mark.slow
def test_joining_a_study_with_other_settings_is_exit_2_and_leaves_it_alone(tmp_path: Path) -> None:
    assert run_cli("run", *TINY, "--n-trials", "1", "--study-name", "s", cwd=tmp_path).returncode == 0
    db = tmp_path / "mtlsearch.db"
    before = _digest(db)
    result = run_cli("run", "--epochs", "2", "--train-size", "64", "--val-size", "200", "--n-trials", "2", "--study-name", "s", cwd=tmp_path)
    assert result.returncode == 2
    assert "fidelity.epochs: 1 -> 2" in result.stderr
    assert _digest(db) == before


@pytest.mark.slow
def test_image_folder_run(tmp_path: Path) -> None:
    spec = {"train": {"x": 8, "y": 8}, "test": {"x": 2, "y": 2}}
    data = write_image_folder(tmp_path / "data", {"art": spec, "photo": spec})
    result = run_cli("run", "--data-root", str(data), "--image-size", "16", "--epochs", "1", "--n-trials", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    study = _study(tmp_path / "mtlsearch.db")
    assert study.user_attrs["settings"]["tasks"] == ["art", "photo"]
    assert study.user_attrs["settings"]["dataset"] == "folder"
    assert study.study_name == "folder-data-resnet18-narrow-budget0.1"  # named after the folder, not the embedded preset


@pytest.mark.slow
def test_ctrl_c_leaves_no_running_trial_and_writes_the_report(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPTUNA_STORAGE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtlsearch", "run", "--epochs", "3", "--train-size", "1000", "--n-trials", "4", "--out", "rep"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    db = tmp_path / "mtlsearch.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until a trial is training
        if db.exists():
            with sqlite3.connect(db) as con:
                try:
                    if con.execute("select count(*) from trials where state='RUNNING'").fetchone()[0]:
                        break
                except sqlite3.OperationalError:
                    pass
        time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    study = _study(db)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1
    retry = [t for t in study.get_trials(states=(TrialState.WAITING,)) if t.user_attrs.get("retry_of") == failed[0].number]
    assert retry and retry[0].system_attrs["fixed_params"] == failed[0].params
    assert (tmp_path / "rep" / f"{study.study_name}.html").exists()
