"""Does every sampler finish a study on the budget space, with no proposal over the budget?

    python benchmarks/space_feasibility.py                      # 4 samplers x 3 seeds x 40 trained trials

Each (sampler, seed) is a real study on the embedded preset, driven to ``--n-trials`` trained
trials by the real worker loop (``mtlsearch.run_worker``) with the made-up evaluator of
``_made_up`` (a score from the candidate, no training): what is measured is the search space
and the samplers, not accuracy, so a run takes seconds to minutes instead of hours. Before the
budget space, random search and NSGA-II proposed 40-60 over-budget allocations per trained
one and Optuna's GP sampler stalled after 12-13 trained trials (docs/search-quality.md,
section C3). Prints, per run, the trained trials, the proposals over the budget, the reused
ones and the seconds the sampler took; the last line is ``over_budget=<total over every
run> completed=<runs that reached the target>/<runs>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import optuna

import mtlsearch
from _made_up import MadeUpEvaluator
from _quality import embedded
from mtlsearch._study import make_sampler
from mtlsearch.errors import MtlsearchError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random", "nsga2", "gp"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=40)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = embedded(args.preset)
    over_total, completed, runs = 0, 0, 0
    print(f"{settings.dataset}, budget {settings.budget:g}, {settings.granularity} units, {args.n_trials} trained trials a run")
    for sampler in args.samplers:
        for seed in args.seeds:
            chosen = dataclasses.replace(settings, sampler=sampler)
            with tempfile.TemporaryDirectory() as tmp:
                study = mtlsearch.create_study(chosen, storage=f"sqlite:///{tmp}/s.db", study_name=f"{sampler}-{seed}", n_trials=args.n_trials).study
                study.sampler = make_sampler(dataclasses.replace(chosen, seed=seed))
                started = time.perf_counter()
                try:
                    mtlsearch.run_worker(study, chosen, MadeUpEvaluator(chosen.tasks), n_trials=args.n_trials)
                    stopped = ""
                except MtlsearchError as exc:  # a stall, said in one line
                    stopped = f", stopped: {exc}"
                seconds = time.perf_counter() - started
                records = mtlsearch.records(study.get_trials(deepcopy=False))
            counts = mtlsearch.Counts.of(records)
            over = sum(r.feasible is False for r in records)
            over_total += over
            completed += counts.trained >= args.n_trials
            runs += 1
            print(f"  {sampler:<7} seed {seed}: {counts.trained} trained, {over} over the budget, {counts['reused']} reused, "
                  f"largest task-specific fraction {max(r.specific_fraction or 0 for r in records):.4f}, {seconds:.0f} s{stopped}", flush=True)  # fmt: skip
    print(f"over_budget={over_total} completed={completed}/{runs}")


if __name__ == "__main__":
    main()
