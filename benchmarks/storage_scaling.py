"""Storage scaling: ask-plus-tell latency with 1, 4 and 16 concurrent worker processes.

Each process runs the worker's storage path (ask, record the candidate: parameters, user
attributes, constraint, under a heartbeat; tell) with an objective that only counts parameters,
no training, until the study holds ``--trials`` finished trials. Backends: SQLite (a file in a
temporary folder), PostgreSQL (a fresh database, dropped afterwards) and ``mtlsearch proxy``
(gRPC) in front of PostgreSQL. Prints one row per backend and process count: median and p95
latency, trials per second, errors, duplicate trial numbers, trials left RUNNING.

    python benchmarks/storage_scaling.py                      # 1,000 trials, 1/4/16 processes
    python benchmarks/storage_scaling.py --sampler tpe --procs 16 --backends postgresql

The last line is the headline: ``postgresql_16_median_ms=...``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _sampler(name: str, seed: int):  # type: ignore[no-untyped-def]
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return None  # the study's own (make_sampler through load_study)


def _proc(url: str, study_name: str, counter, total: int, sampler: str, index: int, out: mp.Queue) -> None:  # type: ignore[no-untyped-def]
    import warnings

    import optuna
    from optuna.trial import TrialState

    from mtlsearch._liveness import Beats
    from mtlsearch._schema import FEASIBLE_TOLERANCE
    from mtlsearch._storage import Heartbeat, open_storage
    from mtlsearch._study import load_study, stored_settings
    from mtlsearch._worker import propose

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    storage = open_storage(url, heartbeat=None if url.startswith("grpc") else Heartbeat(10, 60))
    study = load_study(storage, study_name)
    if (chosen := _sampler(sampler, index)) is not None:
        study.sampler = chosen
    settings = stored_settings(study)
    latencies, errors = [], []
    while True:
        try:
            with counter.get_lock():  # the study-wide count, kept off the storage being measured
                if counter.value >= total:
                    break
                counter.value += 1
            start = time.perf_counter()
            trial = study.ask()
            with Beats(study._storage, trial._trial_id, 10):
                candidate = propose(study, trial, settings, "search")
            if candidate.violation(settings.budget) > FEASIBLE_TOLERANCE:
                study.tell(trial, state=TrialState.PRUNED)
            else:  # an objective that only counts parameters
                study.tell(trial, [0.5 + 0.5 * candidate.specific_fraction, float(candidate.counts.total)])
            latencies.append(time.perf_counter() - start)
        except Exception as exc:  # counted, not hidden
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    out.put((latencies, errors))


def _fresh_study(url: str, name: str) -> None:
    import mtlsearch

    mtlsearch.create_study(mtlsearch.study_settings("embedded"), storage=url, study_name=name)


def _check(url: str, name: str) -> tuple[int, int, int]:
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=name, storage=url)
    numbers = [t.number for t in study.trials]
    running = len(study.get_trials(states=(TrialState.RUNNING,)))
    finished = len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))
    return len(numbers) - len(set(numbers)), running, finished


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(backend: str, procs: int, trials: int, sampler: str, pg_url: str, folder: Path) -> dict[str, object]:
    name = f"scaling-{backend}-{procs}"
    db_url = f"sqlite:///{folder / f'{name}.db'}" if backend == "sqlite" else pg_url
    _fresh_study(db_url, name)
    proxy = None
    url = db_url
    if backend == "proxy":
        port = _free_port()
        proxy = subprocess.Popen([sys.executable, "-m", "mtlsearch", "proxy", "--storage", pg_url, "--port", str(port),
                                  "--threads", str(max(10, procs))], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        url = f"grpc://127.0.0.1:{port}"
    try:
        ctx = mp.get_context("spawn")
        out: mp.Queue = ctx.Queue()
        counter = ctx.Value("i", 0)
        workers = [ctx.Process(target=_proc, args=(url, name, counter, trials, sampler, i, out)) for i in range(procs)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        results = [out.get() for _ in workers]
        wall = time.perf_counter() - start
        for w in workers:
            w.join()
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait()
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = [e for _, errs in results for e in errs]
    duplicates, running, finished = _check(db_url, name)
    return {
        "backend": backend, "procs": procs, "finished": finished,
        "median_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "trials_per_s": len(latencies) / wall,
        "errors": len(errors), "duplicates": duplicates, "running": running,
        "first_error": errors[0] if errors else "",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql", "proxy"], choices=["sqlite", "postgresql", "proxy"])
    parser.add_argument("--sampler", choices=["random", "tpe"], default="random",
                        help="random isolates the storage; tpe is the study's own sampler (its cost grows with trials)")  # fmt: skip
    args = parser.parse_args()

    import psycopg

    db = f"mtlsearch_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(ADMIN, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{db}"')
    pg_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"{args.trials} trials, sampler {args.sampler}, {os.cpu_count()} cores")
            print(f"{'backend':<11} {'procs':>5} {'median ms':>10} {'p95 ms':>8} {'trials/s':>9} {'errors':>7} {'dup':>4} {'running':>8}")
            for backend in args.backends:
                for procs in args.procs:
                    row = measure(backend, procs, args.trials, args.sampler, pg_url, Path(tmp))
                    rows.append(row)
                    print(f"{backend:<11} {procs:>5} {row['median_ms']:>10.1f} {row['p95_ms']:>8.1f} {row['trials_per_s']:>9.1f} "
                          f"{row['errors']:>7} {row['duplicates']:>4} {row['running']:>8}  {row['first_error']}", flush=True)  # fmt: skip
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    head = [r for r in rows if r["backend"] == "postgresql"] or rows
    top = max(head, key=lambda r: r["procs"])
    print(f"{top['backend']}_{top['procs']}_median_ms={top['median_ms']:.1f} errors={top['errors']} duplicates={top['duplicates']}")


if __name__ == "__main__":
    main()
