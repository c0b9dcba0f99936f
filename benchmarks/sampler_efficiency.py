"""Which sampler finds a good front in the fewest trained trials? And what does early stopping cost?

    python benchmarks/sampler_efficiency.py --samplers tpe random nsga2 gp --seeds 0 1 2 --n-trials 40
    python benchmarks/sampler_efficiency.py --samplers tpe --seeds 0 1 2 --n-trials 40 --early-stop 0.02

Each (sampler, seed) is a real study on the embedded benchmark at budget 0.1, run by the real
worker (baselines first, constraint, over-budget proposals never trained) until it holds
``--n-trials`` trained trials. The sampler's seed varies; training uses seed 0 throughout, so
that the samplers are compared on one objective (seed noise is measured separately). Every
candidate's result is kept in ``benchmarks/results/trained.jsonl`` with its accuracy at a third
of its steps: a candidate proposed again, by this run or a later one, is not trained again, so
an interrupted run resumes where it stopped. With ``--early-stop MARGIN`` the worker applies
the opt-in rule; a kept candidate is then stopped or not exactly as training it again would.

Prints, per sampler, the hypervolume after 10, 20, 30 and 40 trained trials (mean over seeds)
and the trained trials it needed to reach random search's mean 40-trial hypervolume. Each run
is written to ``benchmarks/results/runs/<sampler>-<fidelity>-seed<seed>.json`` and reused by a
later invocation, so processes can split the work by ``--samplers`` or ``--seeds`` and a last
one with ``--summary-only`` prints the comparison. The last line is
``trials_to_random40=<tpe's mean>`` (or ``early_stop_saved=<share of training time> hv_lost=<...>``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import optuna
import torch

import mtlsearch._worker as worker_module
from _quality import RESULTS, Cache, embedded, fidelity_name, tasks_for, with_fidelity
from mtlsearch._figures import hypervolume_info
from mtlsearch._report import trials_frame
from mtlsearch._study import create_or_load, make_sampler, set_target
from mtlsearch._train import TrainResult
from mtlsearch.errors import SamplerStalledError
from mtlsearch._worker import PROBE_ATTR, run_worker

TRAINING_SEED = 0
REAL_TRAIN = worker_module._train  # the worker's own; each run wraps it once


def cached_train(cache: Cache, log: list[dict]):  # type: ignore[no-untyped-def]
    """The worker's ``_train``, remembering every result with its accuracy at a third of the steps."""
    real = REAL_TRAIN

    def train(candidate, settings, tasks, device, on_step, probe=None):  # type: ignore[no-untyped-def]
        fid = fidelity_name(settings.fidelity)
        row = cache.get(candidate.key, fid, settings.seed)
        if row is None or "probe_accuracy" not in row:
            marks: dict[str, float] = {}
            started = time.perf_counter()

            def step(done: int, total: int) -> None:
                marks["last_step"] = time.perf_counter() - started

            def record(accuracy: float) -> bool:
                marks["probe_end"] = time.perf_counter() - started
                marks["probe_start"] = marks["last_step"]
                return False

            torch.manual_seed(settings.seed)
            result = real(candidate, settings, tasks, device, step, record)
            total = time.perf_counter() - started
            probe_eval = marks["probe_end"] - marks["probe_start"]
            row = {
                "key": candidate.key, "fidelity": fid, "seed": settings.seed, "label": "sampler", "accuracy": result.accuracy,
                "task_accuracy": result.task_accuracy, "params": candidate.counts.total, "specific_fraction": candidate.specific_fraction,
                "seconds": total - probe_eval, "seconds_to_probe": marks["probe_start"], "probe_eval_seconds": probe_eval,
                "probe_accuracy": result.probe_accuracy, "allocation": candidate.allocation_dict,
            }  # fmt: skip
            cache.put(row)
        stopped = probe is not None and probe(row["probe_accuracy"])
        seconds = (row["seconds_to_probe"] if stopped else row["seconds"]) + (row["probe_eval_seconds"] if probe else 0.0)
        # cost against training this candidate to the end without the rule, from one row's own timings
        # (all taken in one process at one time, so other load on the machine cancels out)
        log.append({"key": row["key"], "seconds": seconds, "stopped": stopped, "relative_cost": seconds / row["seconds"]})
        if stopped:
            return TrainResult({"mean": row["probe_accuracy"]}, seconds, 0.0, row["probe_accuracy"], 1)
        return TrainResult(row["task_accuracy"], seconds, 0.0, row["probe_accuracy"] if probe else None)

    return train


def run(sampler: str, seed: int, n_trials: int, early_stop: float | None, cache: Cache, fidelity: str) -> dict:
    settings = with_fidelity(embedded(sampler=sampler, seed=TRAINING_SEED, early_stop=early_stop), fidelity)
    tasks = tasks_for(settings)
    settings = dataclasses.replace(settings, tasks=tuple(t.name for t in tasks), num_classes=tuple(t.num_classes for t in tasks))
    storage = optuna.storages.InMemoryStorage()
    study, _ = create_or_load(storage, f"{sampler}-{seed}", settings)
    study.sampler = make_sampler(dataclasses.replace(settings, seed=seed))
    set_target(study, n_trials)
    log: list[dict] = []
    worker_module._train = cached_train(cache, log)
    started = time.perf_counter()
    stalled = None
    try:
        summary = run_worker(study, settings, tasks, n_trials=n_trials, device="cpu")
        stopped, infeasible, reused = len(summary.stopped), len(summary.infeasible), len(summary.reused)
    except SamplerStalledError as exc:  # over-budget proposals in a row, more than --max-infeasible
        stalled = str(exc)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        stopped, infeasible, reused = 0, states.count(optuna.trial.TrialState.PRUNED), 0
    wall = time.perf_counter() - started
    volumes = hypervolume_info(study, trials_frame(study), settings).hypervolume
    trials = study.get_trials(deepcopy=False)
    return {
        "sampler": sampler, "seed": seed, "early_stop": early_stop, "fidelity": fidelity, "hypervolume": volumes,
        "train_seconds": sum(r["seconds"] for r in log), "stopped": stopped, "stalled": stalled,
        "relative_cost": statistics.fmean(r["relative_cost"] for r in log) if log else None,
        "infeasible": infeasible, "reused": reused, "wall_seconds": wall,
        "trials": [{"number": t.number, "state": t.state.name, "values": t.values, "strategy": t.user_attrs.get("strategy"),
                    "specific_fraction": t.user_attrs.get("specific_fraction"), "probe": t.user_attrs.get(PROBE_ATTR),
                    "allocation": t.user_attrs.get("allocation")}
                   for t in trials if t.state.name in ("COMPLETE", "PRUNED") and t.user_attrs.get("specific_fraction", 1) <= settings.budget + 1e-12],
    }  # fmt: skip


def reach(volumes: list[float], target: float) -> int | None:
    return next((i + 1 for i, v in enumerate(volumes) if v >= target - 1e-12), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random", "nsga2", "gp"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--early-stop", type=float, help="compare TPE with this early-stopping margin against TPE without")
    parser.add_argument("--fidelity", default="5x1000", help="EPOCHSxIMAGES per task (the embedded default: 5x1000)")
    parser.add_argument("--max-infeasible", type=int, default=500, help="over-budget proposals in a row after which a run counts as stalled (the worker stops there too)")
    parser.add_argument("--summary-only", action="store_true", help="summarise the kept runs, train nothing")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cache", default=str(RESULTS / "trained.jsonl"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    worker_module.MAX_INFEASIBLE_IN_A_ROW = args.max_infeasible
    cache = Cache(Path(args.cache))
    runs: dict[str, list[dict]] = {}
    variants = [(s, None) for s in args.samplers]
    if args.early_stop is not None:
        variants = [(args.samplers[0], None), (args.samplers[0], args.early_stop)]
    folder = RESULTS / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:  # seed by seed: every sampler has a result early
        for sampler, margin in variants:
            name = sampler if margin is None else f"{sampler}+early-stop{margin:g}"
            path = folder / f"{name}-{args.fidelity}-seed{seed}.json"
            kept = json.loads(path.read_text()) if path.exists() else None
            if kept is not None and kept["n_trials"] == args.n_trials:
                out = kept  # one file per run: processes share the work by sampler or seed
            elif args.summary_only:
                continue
            else:
                out = run(sampler, seed, args.n_trials, margin, cache, args.fidelity) | {"n_trials": args.n_trials, "name": name}
                path.write_text(json.dumps(out, indent=1))
            runs.setdefault(name, []).append(out)
            hv = out["hypervolume"]
            print(f"  {name:<22} seed {seed}: hypervolume {hv[-1]:.4f} after {len(hv)} trained, {out['train_seconds']:6.0f} s of training, "
                  f"{out['infeasible']} over-budget proposals, {out['stopped']} stopped" + (" (stalled)" if out["stalled"] else ""), flush=True)  # fmt: skip

    def mean_at(name: str, n: int) -> float:
        return statistics.mean(r["hypervolume"][min(n, len(r["hypervolume"])) - 1] for r in runs[name])

    marks = [n for n in (10, 20, 30, 40) if n <= args.n_trials]
    for name in runs:
        print(f"{name:<22} hypervolume " + "  ".join(f"@{n} {mean_at(name, n):.4f}" for n in marks))
    if args.early_stop is not None:
        plain, stopped = runs[variants[0][0]], runs[list(runs)[1]]
        saved = 1 - statistics.fmean(r["relative_cost"] for r in stopped)  # per candidate, against training it to the end
        lost = statistics.mean(r["hypervolume"][-1] for r in plain) - statistics.mean(r["hypervolume"][-1] for r in stopped)
        print(f"early_stop_saved={saved:.3f} hv_lost={lost:.4f}")
        return
    if "random" in runs:
        target = mean_at("random", args.n_trials)
        for name in runs:
            needed = [reach(r["hypervolume"], target) for r in runs[name]]
            print(f"{name:<22} reaches random's {args.n_trials}-trial hypervolume {target:.4f} after {needed} trained trials")
        needed = [reach(r["hypervolume"], target) for r in runs[args.samplers[0]]]
        shown = statistics.mean(n if n is not None else float("inf") for n in needed)
        print(f"trials_to_random{args.n_trials}={shown:g}")


if __name__ == "__main__":
    main()
