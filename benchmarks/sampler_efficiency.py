"""Which sampler finds a good front in the fewest trained trials? (And what does early stopping cost?)

    python benchmarks/sampler_efficiency.py --fidelity 10x250 --samplers tpe random nsga2 gp --seeds 0 1 2
    python benchmarks/sampler_efficiency.py --fidelity 10x250 --summary-only
    python benchmarks/sampler_efficiency.py --preset fashion-domains --fidelity 3x1000 --samplers tpe --seeds 0 1 2

Each (sampler, seed) is a real study run by the real worker loop (``mtlsearch.run_worker``):
baselines first, the search space that fits every proposal to the budget, the constraint
recorded on every trial, until the study holds ``--n-trials`` trained trials. The sampler's
seed varies; training uses the preset's seed throughout, so the samplers are compared on one
objective (the seed noise is measured apart, by ``benchmark_separation.py``). The worker is
given ``CachedEvaluator``: the study's own training recipe, but every result is kept in
``benchmarks/results/trained.jsonl`` and a candidate trained before on the same kind of CPU
(by this run, another run or another script) is not trained again, so an interrupted run
resumes where it stopped. A run made on another kind of CPU is made again here, and the
summary compares runs of one kind only: with another instruction set the same training seed
is another draw of the noise, and a sampler would be judged on another objective. With
``--early-stop MARGIN`` the worker applies the opt-in rule; a kept candidate is then stopped or
not exactly as training it again would.

Runs go to ``benchmarks/results/runs/<dataset>-<sampler>-<fidelity>-seed<seed>-<cpu kind>.json``
(runs kept before the kind was in the name have none), two at a
time in processes of one torch thread each (``--processes``), and a later invocation reuses
them. Prints, per sampler, the hypervolume after 10, 20, 30 and 40 trained trials (mean over
seeds), the over-budget proposals (none, by construction) and the trained trials each run
needed to reach random search's mean 40-trial hypervolume. The last line is
``trials_to_random40=<the worst of the first sampler's runs>`` (or
``early_stop_saved=<share of training time> hv_lost=<...>`` with ``--early-stop``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import optuna
import torch

import mtlsearch
from _quality import RESULTS, Cache, benchmark_name, cpu_kind, data_id, embedded, fidelity_name, kept_run, kind_of, run_file, run_trials, tasks_for, with_fidelity
from mtlsearch import TrainResult
from mtlsearch._figures import hypervolume_info
from mtlsearch._study import make_sampler
from mtlsearch.errors import SearchStalledError

SEARCHED = "search"


class CachedEvaluator:
    """The study's recipe (``mtlsearch.train_allocation``), remembered: a candidate is trained
    once per fidelity, seed and kind of CPU, with its mean val accuracy at a third of the steps
    recorded, so the early-stopping rule can be replayed on it. A row trained on another kind
    of CPU is not reused: there the same seed is another draw of the noise, and the samplers
    would no longer be compared on one objective."""

    device = "cpu"

    def __init__(self, settings, tasks, cache: Cache, log: list[dict]) -> None:  # type: ignore[no-untyped-def]
        self.settings, self.tasks, self.cache, self.log = settings, tasks, cache, log

    def __call__(self, candidate, *, on_step=None, probe=None) -> TrainResult:  # type: ignore[no-untyped-def]
        fid, seed, dataset = fidelity_name(self.settings.fidelity), self.settings.seed, self.settings.dataset
        row = self.cache.get(candidate.key, fid, seed, data_id(self.settings))
        if row is None or row.get("probe_accuracy") is None:
            marks: dict[str, float] = {}
            started = time.perf_counter()

            def step(done: int, total: int) -> None:
                marks["last_step"] = time.perf_counter() - started

            def record(accuracy: float) -> bool:  # measure the probe, never stop: the full result is kept too
                marks["probe_end"] = time.perf_counter() - started
                marks["probe_start"] = marks["last_step"]
                return False

            _, result = mtlsearch.train_allocation(candidate.allocation_dict, self.settings, self.tasks, device="cpu", seed=seed,
                                                   on_step=step, probe=record, execution="stacked")  # fmt: skip
            total = time.perf_counter() - started
            probe_eval = marks["probe_end"] - marks["probe_start"]
            row = {
                "dataset": dataset, "data": data_id(self.settings), "key": candidate.key, "fidelity": fid, "seed": seed, "label": "sampler", "accuracy": result.accuracy,
                "task_accuracy": result.task_accuracy, "params": candidate.counts.total, "specific_fraction": candidate.specific_fraction,
                "seconds": total - probe_eval, "seconds_to_probe": marks["probe_start"], "probe_eval_seconds": probe_eval,
                "probe_accuracy": result.probe_accuracy, "allocation": candidate.allocation_dict, "cpu": cpu_kind(),
            }  # fmt: skip
            self.cache.put(row)
        stopped = probe is not None and probe(row["probe_accuracy"])
        seconds = (row["seconds_to_probe"] if stopped else row["seconds"]) + (row["probe_eval_seconds"] if probe else 0.0)
        # cost against training this candidate to the end without the rule, from one row's own timings
        self.log.append({"key": row["key"], "seconds": seconds, "stopped": stopped, "relative_cost": seconds / row["seconds"]})
        if stopped:
            return TrainResult({"mean": row["probe_accuracy"]}, seconds, 0.0, row["probe_accuracy"], 1)
        return TrainResult(row["task_accuracy"], seconds, 0.0, row["probe_accuracy"] if probe else None)


def run(args: tuple[str, str, int, int, float | None, str, str]) -> dict:
    preset, sampler, seed, n_trials, early_stop, fidelity, cache_path = args
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = with_fidelity(embedded(preset, sampler=sampler, early_stop=early_stop), fidelity)
    tasks = tasks_for(settings)
    log: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        handle = mtlsearch.create_study(settings, storage=f"sqlite:///{tmp}/study.db", study_name=f"{sampler}-{seed}", n_trials=n_trials)
        study = handle.study
        study.sampler = make_sampler(dataclasses.replace(settings, seed=seed))  # the sampler's seed; training keeps the preset's
        started = time.perf_counter()
        stalled = None
        try:
            mtlsearch.run_worker(study, settings, CachedEvaluator(settings, tasks, Cache(Path(cache_path)), log), n_trials=n_trials)
        except SearchStalledError as exc:  # the space exhausted: the run ends where it is, and says so
            stalled = str(exc)
        wall = time.perf_counter() - started
        volumes = hypervolume_info(study, mtlsearch.trials_frame(study), settings).hypervolume
        records = mtlsearch.records(study.get_trials(deepcopy=False))
    return {
        "dataset": benchmark_name(settings), "sampler": sampler, "seed": seed, "early_stop": early_stop, "fidelity": fidelity, "hypervolume": volumes, "cpu": cpu_kind(),
        "train_seconds": sum(r["seconds"] for r in log), "stalled": stalled,
        "stopped": sum(r.kind == "stopped" for r in records), "reused": sum(r.kind == "reused" for r in records),
        "relative_cost": statistics.fmean(r["relative_cost"] for r in log) if log else None,
        "infeasible": sum(r.feasible is False for r in records), "wall_seconds": wall, "n_trials": n_trials,
        "trials": run_trials(study),
    }  # fmt: skip


def reach(volumes: list[float], target: float) -> int | None:
    return next((i + 1 for i, v in enumerate(volumes) if v >= target - 1e-12), None)


def worst(needed: Iterable[int | None]) -> float:
    """The most trials any run needed to reach a mark (infinite when a run never did)."""
    return max(n if n is not None else float("inf") for n in needed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random", "nsga2", "gp"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--early-stop", type=float, help="compare the first sampler with this early-stopping margin against it without")
    parser.add_argument("--fidelity", help="EPOCHSxIMAGES per task (default: the preset's)")
    parser.add_argument("--summary-only", action="store_true", help="summarise the kept runs, train nothing")
    parser.add_argument("--processes", type=int, default=2, help="runs at a time, one torch thread each")
    parser.add_argument("--cache", default=str(RESULTS / "trained.jsonl"))
    args = parser.parse_args()
    base = embedded(args.preset)
    fidelity = args.fidelity or fidelity_name(base.fidelity)
    variants = [(s, None) for s in args.samplers]
    if args.early_stop is not None:
        variants = [(args.samplers[0], None), (args.samplers[0], args.early_stop)]
    (RESULTS / "runs").mkdir(parents=True, exist_ok=True)

    def name_of(sampler: str, margin: float | None) -> str:
        return sampler if margin is None else f"{sampler}+early-stop{margin:g}"

    def kept(name: str, seed: int) -> dict | None:
        return kept_run(benchmark_name(base), name, fidelity, seed)

    def current(run: dict | None) -> bool:  # the asked length, trained on this kind of CPU
        return run is not None and run["n_trials"] == args.n_trials and kind_of(run) == cpu_kind()

    todo = [(args.preset, s, seed, args.n_trials, m, fidelity, args.cache) for seed in args.seeds for s, m in variants
            if not current(kept(name_of(s, m), seed))]  # fmt: skip
    if todo and not args.summary_only:
        from multiprocessing import get_context

        with get_context("spawn").Pool(args.processes) as pool:
            for out in pool.imap_unordered(run, todo):
                name = name_of(out["sampler"], out["early_stop"])
                run_file(benchmark_name(base), name, fidelity, out["seed"]).write_text(json.dumps(out | {"name": name}, indent=1))
                hv = out["hypervolume"]
                print(f"  {name:<22} seed {out['seed']}: hypervolume {hv[-1]:.4f} after {len(hv)} trained, {out['train_seconds']:6.0f} s of "
                      f"training, {out['infeasible']} over-budget proposals, {out['reused']} reused, {out['stopped']} stopped", flush=True)  # fmt: skip
    found = [one for seed in args.seeds for s, m in variants if (one := kept(name_of(s, m), seed)) is not None]
    kinds = [kind_of(one) for one in found]
    kind = cpu_kind() if cpu_kind() in kinds else max(set(kinds), key=kinds.count, default=cpu_kind())
    left_out = [f"{one['sampler']} seed {one['seed']} ({kind_of(one)})" for one in found if kind_of(one) != kind]
    if left_out:  # the same training seed is another draw of the noise on another kind of CPU
        print(f"runs trained on another kind of CPU than {kind}, left out of the comparison: {', '.join(left_out)}")
    runs: dict[str, list[dict]] = {}
    for one in found:
        if kind_of(one) == kind:
            runs.setdefault(name_of(one["sampler"], one["early_stop"]), []).append(one)

    def mean_at(name: str, n: int) -> float:
        return statistics.mean(r["hypervolume"][min(n, len(r["hypervolume"])) - 1] for r in runs[name])

    marks = [n for n in (10, 20, 30, 40) if n <= args.n_trials]
    print(f"{benchmark_name(base)}, fidelity {fidelity}, budget {base.budget:g}, {base.granularity} units, sampler seeds {args.seeds}, trained on {kind}")
    for name, kept in runs.items():
        print(f"{name:<22} hypervolume " + "  ".join(f"@{n} {mean_at(name, n):.4f}" for n in marks)
              + f"   over-budget proposals {sum(r['infeasible'] for r in kept)}, reused {[r['reused'] for r in kept]}")  # fmt: skip
    if args.early_stop is not None:
        plain, stopped = runs[name_of(*variants[0])], runs[name_of(*variants[1])]
        saved = 1 - statistics.fmean(r["relative_cost"] for r in stopped)  # per candidate, against training it to the end
        lost = statistics.mean(r["hypervolume"][-1] for r in plain) - statistics.mean(r["hypervolume"][-1] for r in stopped)
        print(f"early_stop_saved={saved:.3f} hv_lost={lost:.4f}")
        return
    if "random" in runs:
        target = mean_at("random", args.n_trials)
        slowest = {}
        for name in runs:
            needed = [reach(r["hypervolume"], target) for r in runs[name]]
            slowest[name] = worst(needed)
            print(f"{name:<22} reaches random's {args.n_trials}-trial mean hypervolume {target:.4f} after {needed} trained trials")
        print(f"trials_to_random{args.n_trials}={slowest[args.samplers[0]]:g}")


if __name__ == "__main__":
    main()
