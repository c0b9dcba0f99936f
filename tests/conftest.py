from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):  # `-n 2`: two test processes share the cores, one torch thread each (and each CLI they start)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_settings():
    """Embedded preset at a fidelity that trains a candidate in about a second."""
    from mtlsearch._settings import resolve_settings
    from mtlsearch.datasets import load_tasks

    settings = resolve_settings("embedded", epochs=1, train_size=64)
    tasks = load_tasks(settings.dataset, image_size=settings.image_size, train_size=64)
    tasks = [dataclasses.replace(t, val=t.val.head(100)) for t in tasks]
    settings = dataclasses.replace(
        settings, tasks=tuple(t.name for t in tasks), num_classes=tuple(t.num_classes for t in tasks)
    )
    return settings, tasks


def _cli_env(env: dict[str, str] | None) -> dict[str, str]:
    full_env = {k: v for k, v in os.environ.items() if k != "OPTUNA_STORAGE"}
    full_env.update({"COLUMNS": "200", **(env or {})})
    return full_env


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:  # a net for hangs, not a clock
    return subprocess.run(
        [sys.executable, "-m", "mtlsearch", *args],
        cwd=cwd, env=_cli_env(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def write_image_folder(root: Path, tasks: dict[str, dict[str, dict[str, int]]], size: int = 12) -> Path:
    """``tasks[task][split][class] = count`` tiny PNGs of distinct colours."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for task, splits in tasks.items():
        for split, classes in splits.items():
            for index, (cls, count) in enumerate(classes.items()):
                folder = root / task / split / cls
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    pixels = np.full((size, size, 3), 40 * index, dtype=np.uint8)
                    pixels += rng.integers(0, 30, size=pixels.shape, dtype=np.uint8)
                    Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    import secrets

    import psycopg

    name = f"mtlsearch_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        con = psycopg.connect(POSTGRES_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"the distributed tests need PostgreSQL at {POSTGRES_ADMIN} (trust auth): {exc}".splitlines()[0], pytrace=False)
    with con:
        con.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``mtlsearch ARGS`` in the background, one thread of torch each (the workers share 2 cores)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mtlsearch", *args],
        cwd=cwd, env=_cli_env({"OMP_NUM_THREADS": "1", **(env or {})}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


class TcpForwarder:
    """127.0.0.1:<port> -> upstream, which a test can cut (``down``) and restore (``up``):
    the database going away and coming back, as a worker sees it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        import socket

        self.upstream = upstream
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: object = None
        self._conns: list = []

    def up(self) -> None:
        import socket
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def down(self) -> None:
        import socket

        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]  # wakes accept()
            except OSError:
                pass
            self._listener.close()  # type: ignore[attr-defined]
            self._listener = None
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass
        self._conns = []


def fill_study(study, settings, *, trials: int, seed: int = 0) -> None:
    """Record the baselines and ``trials`` proposals of the search space the way a worker does
    (attributes, constraint), with a made-up accuracy instead of training: fast, and known to
    the test."""
    import math

    import optuna
    from optuna.trial import TrialState

    from mtlsearch._space import SHARE_PREFIX, TOTAL_PARAM
    from mtlsearch._study import space_for
    from mtlsearch._worker import propose

    study.sampler = optuna.samplers.RandomSampler(seed=seed)
    rng = np.random.default_rng(seed)
    space = space_for(settings)
    for _ in range(trials):  # totals spread from one filter to the whole budget, on a log scale
        total = math.exp(rng.uniform(math.log(space.smallest), math.log(settings.budget)))
        study.enqueue_trial({TOTAL_PARAM: total, **{SHARE_PREFIX + u: float(rng.uniform()) for u in space.unit_convs}})
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial = study.ask()
        strategy = trial.user_attrs.get("strategy", "search")
        candidate = propose(study, trial, settings, strategy)
        base = 0.7 + 0.5 * candidate.specific_fraction + float(rng.normal(0, 0.02))
        task_accuracy = {t: round(base + 0.01 * (i - 1.5), 4) for i, t in enumerate(settings.tasks)}
        trial.set_user_attr("task_accuracy", task_accuracy)
        study.tell(trial, [sum(task_accuracy.values()) / len(task_accuracy), float(candidate.counts.total)])


def filled_study(settings, folder: Path, name: str, *, trials: int):  # type: ignore[no-untyped-def]
    """``(url, study)``: a SQLite study in ``folder`` filled by ``fill_study``."""
    from mtlsearch._storage import open_storage
    from mtlsearch._study import create_or_load

    url = f"sqlite:///{folder / 'study.db'}"
    study, _ = create_or_load(open_storage(url), name, settings)
    fill_study(study, settings, trials=trials)
    return url, study


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
