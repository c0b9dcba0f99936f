"""Many workers on one study: the study-wide target, killed workers, outages, the gRPC proxy.

Workers are real ``mtlsearch worker`` processes on SQLite and on a fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import TcpForwarder, free_port, run_cli, start_cli

pytestmark = pytest.mark.slow  # workers in subprocesses, servers

TINY = ("--epochs", "1", "--train-size", "64", "--budget", "0.2", "--val-size", "200")
SLOW = ("--epochs", "1", "--train-size", "600", "--budget", "0.2", "--val-size", "200")  # about 5 s a trial, one thread
FAST_BEATS = ("--heartbeat-interval", "1", "--grace-period", "3")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue("pg_url")


def _name() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def _trained(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if "reused_from" not in t.user_attrs]


def _create(url: str, name: str, *settings: str, n_trials: int, cwd: Path) -> None:
    result = run_cli("create", "--study-name", name, "--storage", url, *settings, "--n-trials", str(n_trials), cwd=cwd)
    assert result.returncode == 0, result.stderr


def _wait_for_training(url: str, name: str, worker_pid: int | None = None, timeout: float = 600) -> optuna.trial.FrozenTrial:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in _study(url, name).get_trials(states=(TrialState.RUNNING,)):
            if t.system_attrs.get("mtlsearch:training") and (
                worker_pid is None or t.user_attrs.get("worker", "").endswith(f":{worker_pid}")
            ):
                return t
        time.sleep(0.3)
    raise AssertionError("no trial started training")


def _finish(proc, timeout: float = 1200) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_four_workers_reach_exactly_the_target(url: str, tmp_path: Path) -> None:
    name = _name()
    _create(url, name, *TINY, n_trials=8, cwd=tmp_path)
    procs = [start_cli("worker", "--study-name", name, "--storage", url, cwd=tmp_path) for _ in range(4)]
    for proc in procs:
        code, _, err = _finish(proc)
        assert code == 0, err
        assert "database is locked" not in err
    study = _study(url, name)
    trained = _trained(study)
    assert 8 <= len(trained) <= 8 + 4 - 1
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert not study.get_trials(states=(TrialState.FAIL,))
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)) == numbers[-1] + 1
    strategies = [t.user_attrs["strategy"] for t in trained]
    assert all(strategies.count(s) == 1 for s in ("shared", "bottom-specific", "top-specific", "random"))
    assert len({t.user_attrs["worker"] for t in trained}) >= 2  # the work was shared
    pushed = study._storage.get_study_system_attrs(study._study_id)
    assert any("mtlsearch-pareto" in key for key in pushed)  # the finished study is in the dashboard


def test_a_worker_killed_mid_training_is_retried_and_the_study_completes(pg_url: str, tmp_path: Path) -> None:
    name = _name()
    _create(pg_url, name, *SLOW, n_trials=4, cwd=tmp_path)
    victim = start_cli("worker", "--study-name", name, "--storage", pg_url, *FAST_BEATS, cwd=tmp_path)
    killed = _wait_for_training(pg_url, name, worker_pid=victim.pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivor = start_cli("worker", "--study-name", name, "--storage", pg_url, *FAST_BEATS, cwd=tmp_path)
    code, _, err = _finish(survivor)
    assert code == 0, err
    study = _study(pg_url, name)
    assert study.trials[killed.number].state == TrialState.FAIL
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["strategy"] == killed.user_attrs["strategy"]
    assert len(_trained(study)) == 4
    assert not study.get_trials(states=(TrialState.RUNNING,))


def test_sigint_fails_the_running_trial_at_once(url: str, tmp_path: Path) -> None:
    name = _name()
    _create(url, name, *SLOW, n_trials=2, cwd=tmp_path)
    proc = start_cli("worker", "--study-name", name, "--storage", url, cwd=tmp_path)
    running = _wait_for_training(url, name)
    proc.send_signal(signal.SIGINT)
    code, _, err = _finish(proc, timeout=300)
    assert code == 130, err
    study = _study(url, name)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert study.trials[running.number].state == TrialState.FAIL
    retry = [t for t in study.get_trials(states=(TrialState.WAITING,)) if t.user_attrs.get("retry_of") == running.number]
    assert len(retry) == 1


def test_joining_with_other_settings_fails_and_changes_nothing(url: str, tmp_path: Path) -> None:
    name = _name()
    _create(url, name, *TINY, n_trials=3, cwd=tmp_path)
    before = len(_study(url, name).trials)
    again = run_cli("create", "--study-name", name, "--storage", url, *TINY, cwd=tmp_path)
    assert again.returncode == 0 and "already exists" in again.stdout and "same settings" in again.stdout
    for command in ("create", "run"):
        other = run_cli(command, "--study-name", name, "--storage", url, "--epochs", "2", "--train-size", "64", "--budget", "0.2", "--val-size", "200", cwd=tmp_path)
        assert other.returncode == 2
        assert other.stderr.count("\n") == 1 and "fidelity.epochs: 1 -> 2" in other.stderr
    missing = run_cli("worker", "--study-name", "nope", "--storage", url, cwd=tmp_path)
    assert missing.returncode == 2 and "mtlsearch create --study-name nope" in missing.stderr
    study = _study(url, name)
    assert len(study.trials) == before and study.user_attrs["n_trials"] == 3


def test_run_with_local_workers(tmp_path: Path) -> None:
    result = run_cli("run", *TINY, "--workers", "2", "--devices", "cpu", "--n-trials", "5", "--out", "rep", cwd=tmp_path,
                     env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 workers on cpu, cpu" in result.stdout
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'mtlsearch.db'}")
    study = _study(f"sqlite:///{tmp_path / 'mtlsearch.db'}", summary.study_name)
    assert 5 <= len(_trained(study)) <= 6
    assert {t.user_attrs["worker"] for t in _trained(study)} != 1
    assert (tmp_path / "rep" / f"{summary.study_name}.html").exists()


def test_grpc_proxy_serves_two_workers(pg_url: str, tmp_path: Path) -> None:
    name = _name()
    _create(pg_url, name, *TINY, n_trials=5, cwd=tmp_path)
    port = free_port()
    proxy = start_cli("proxy", "--storage", pg_url, "--port", str(port), "--grace-period", "3", cwd=tmp_path)
    try:
        grpc_url = f"grpc://127.0.0.1:{port}"
        workers = [start_cli("worker", "--study-name", name, "--storage", grpc_url, *FAST_BEATS, cwd=tmp_path) for _ in range(2)]
        for proc in workers:
            code, _, err = _finish(proc)
            assert code == 0, err
    finally:
        proxy.send_signal(signal.SIGINT)
        _finish(proxy, timeout=30)
    study = _study(pg_url, name)
    assert 5 <= len(_trained(study)) <= 6
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert all(isinstance(t.system_attrs.get("mtlsearch:beat"), int) for t in _trained(study))


def _events(proc, wanted: str, timeout: float = 600) -> list[dict]:
    """Read a worker's JSON events until one of kind ``wanted``."""
    seen, deadline = [], time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1]["event"] == wanted or time.monotonic() > deadline:
            break
    return seen


def _worker_behind_a_forwarder(pg_url: str, tmp_path: Path, *options: str):  # type: ignore[no-untyped-def]
    """A one-trial study, and a worker that reaches PostgreSQL through a forwarder the test
    can cut, once that worker has started training."""
    name = _name()
    _create(pg_url, name, *SLOW, n_trials=1, cwd=tmp_path)
    forwarder = TcpForwarder(("127.0.0.1", 5432))
    forwarder.up()
    via = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{forwarder.port}")
    proc = start_cli("worker", "--study-name", name, "--storage", via, *options, "--events", cwd=tmp_path)
    assert _events(proc, "start")[-1]["event"] == "start"
    return name, forwarder, proc


def test_database_outage_is_ridden_out(pg_url: str, tmp_path: Path) -> None:
    name, forwarder, proc = _worker_behind_a_forwarder(pg_url, tmp_path, "--patience", "120")
    forwarder.down()
    assert _events(proc, "storage")[-1]["event"] == "storage"  # the result waits for the database
    time.sleep(1)
    forwarder.up()
    code, out, err = _finish(proc)
    forwarder.down()
    assert code == 0, err
    assert '"event": "finish"' in out
    study = _study(pg_url, name)
    assert len(_trained(study)) == 1  # told once, through the outage
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.FAIL))


def test_database_gone_for_good_exits_cleanly_and_the_trial_is_recovered(pg_url: str, tmp_path: Path) -> None:
    name, forwarder, proc = _worker_behind_a_forwarder(pg_url, tmp_path, "--patience", "3", *FAST_BEATS)
    forwarder.down()
    code, _, err = _finish(proc)
    assert code == 1
    assert err.startswith("error: the storage was unreachable for 3 s (last while recording a result") and err.count("\n") == 1
    stranded = _study(pg_url, name).get_trials(states=(TrialState.RUNNING,))
    assert len(stranded) == 1  # it could not be told; its silence gives it away
    rescuer = start_cli("worker", "--study-name", name, "--storage", pg_url, *FAST_BEATS, cwd=tmp_path)
    code, _, err = _finish(rescuer)
    assert code == 0, err
    study = _study(pg_url, name)
    assert study.trials[stranded[0].number].state == TrialState.FAIL
    assert len(_trained(study)) == 1 and not study.get_trials(states=(TrialState.RUNNING,))


DOCS = Path(__file__).resolve().parents[1] / "docs"
WORKER_LINE = 'mtlsearch worker --study-name "$MTLSEARCH_STUDY" --storage "$OPTUNA_STORAGE" --device auto'


def test_the_documented_slurm_and_kubernetes_workers_run(pg_url: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import yaml

    script = DOCS / "distributed" / "slurm-worker.sh"
    manifest = yaml.safe_load((DOCS / "distributed" / "worker-job.yaml").read_text())
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert WORKER_LINE in script.read_text().splitlines()
    assert container["command"][-1] == WORKER_LINE
    assert WORKER_LINE in (DOCS / "distributed.md").read_text()
    name = _name()
    _create(pg_url, name, *TINY, n_trials=2, cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "OPTUNA_STORAGE"}
    env.update({"MTLSEARCH_STUDY": name, "OPTUNA_STORAGE": pg_url, "OMP_NUM_THREADS": "1",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"})  # fmt: skip
    slurm = subprocess.run(["bash", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert slurm.returncode == 0, slurm.stderr
    assert len(_trained(_study(pg_url, name))) == 2
    _create(pg_url, name, *TINY, n_trials=3, cwd=tmp_path)  # raise the target; the settings are the same
    pod_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    pod = subprocess.run(container["command"], env={**env, **pod_env, "MTLSEARCH_STUDY": name}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert pod.returncode == 0, pod.stderr
    assert len(_trained(_study(pg_url, name))) == 3


def test_a_stop_swallowed_by_a_finaliser_still_stops_the_worker() -> None:
    code = """
import os, signal
from mtlsearch._flows import stop_on_signals
stop_on_signals()
class Finaliser:
    def __del__(self):  # like a garbage-collection callback: Python ignores what it raises
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100_000):
            pass
try:
    Finaliser()
    for _ in range(10_000_000):
        pass
    print("missed")
except KeyboardInterrupt:
    print("stopped")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "stopped", result.stderr
