"""Are task-specific filters under-trained by the summed multi-task loss? One knob, 3 seeds.

    python benchmarks/specific_gradient.py --scale 8

The worker sums the tasks' losses, so a shared filter moves by the sum of every task's
gradient and a task-specific one by its own task's alone: with eight tasks, perhaps an eighth
as fast. If that starved task-specific filters, multiplying their gradients by ``--scale``
(the number of tasks: each parameter then moves by the mean over the tasks that use it, times
the tasks) would lift every allocation that has them, and most the ones with many. This trains
the preset's baselines and the hand-made allocation of ``benchmark_separation.py`` with the
scaled gradients (its own results file: the cache holds the worker's recipe only), and prints
each against the worker's recipe (rows of ``benchmarks/results/trained.jsonl`` trained on this
kind of CPU, trained first where missing), paired by seed,
on all domains and on each group of domains. The last line is
``handmade_scaled_minus_plain=<mean> noise=<std>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from multiprocessing import get_context

import mtlsearch
from _quality import RESULTS, Cache, cpu_kind, embedded, kind_of, tasks_for, train_many
from benchmark_separation import GROUPS, candidates


def _scale_task_filters(scale: float) -> None:
    """Pool initialiser: from now on, every task-specific filter a network of this process
    registers has its gradient multiplied by ``scale`` (torch calls the hook as each network
    registers its parameters; nothing of mtlsearch is patched). Once per process: a hook added
    per training would stack, and the second training would get ``scale`` squared."""
    import torch

    torch.set_num_threads(1)

    def hook(module: torch.nn.Module, name: str, parameter: torch.nn.Parameter | None) -> None:
        if parameter is not None and name in ("specific", "specific_bias"):
            parameter.register_hook(lambda grad: grad * scale)

    torch.nn.modules.module.register_module_parameter_registration_hook(hook)


def _scaled(job: tuple[str, dict[str, float], int, float]) -> dict:
    """One training of the worker's recipe in a process set up by ``_scale_task_filters``."""
    label, allocation, seed, scale = job
    settings = embedded("fashion-mux-scratch")
    _, result = mtlsearch.train_allocation(dict(allocation), settings, tasks_for(settings), device="cpu", seed=seed, execution="stacked")
    return {"label": label, "seed": seed, "scale": scale, "accuracy": result.accuracy, "task_accuracy": result.task_accuracy, "cpu": cpu_kind()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=8.0, help="factor on the task-specific filters' gradients")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    settings = embedded("fashion-mux-scratch")
    allocations = {label: a for label, a in candidates(settings).items() if label not in ("independent", "random")}
    out = RESULTS / f"specific_gradient-{settings.dataset}-x{args.scale:g}.json"
    kind = cpu_kind()  # rows of another kind stay in the file, unused: they pair with that kind's recipe rows
    done = {(r["label"], r["seed"], kind_of(r)): r for r in json.loads(out.read_text())["rows"]} if out.exists() else {}
    jobs = [(label, a, seed, args.scale) for label, a in allocations.items() for seed in args.seeds if (label, seed, kind) not in done]
    with get_context("spawn").Pool(2, initializer=_scale_task_filters, initargs=(args.scale,)) as pool:
        for row in pool.imap_unordered(_scaled, jobs):
            done[(row["label"], row["seed"], kind)] = row
            print(f"  trained {row['label']:<28} seed {row['seed']} x{args.scale:g}: {row['accuracy']:.4f}", flush=True)
            RESULTS.mkdir(exist_ok=True)
            out.write_text(json.dumps({"scale": args.scale, "rows": list(done.values())}, indent=1))
    plain_jobs = [(settings, a, seed, label) for label, a in allocations.items() for seed in args.seeds]
    recipe = {(label, seed): row for (_, _, seed, label), row in zip(plain_jobs, train_many(plain_jobs, Cache(RESULTS / "trained.jsonl")))}
    groups = {"all domains": tuple(next(iter(done.values()))["task_accuracy"]), **GROUPS.get(settings.dataset, {})}
    print(f"{settings.dataset}, fidelity {settings.fidelity.epochs}x{settings.fidelity.train_size}: task-specific gradients x{args.scale:g} "
          f"minus the worker's recipe, paired by seed {args.seeds}")  # fmt: skip
    last = (0.0, 0.0)
    for label in allocations:
        parts = []
        for name, domains in groups.items():
            diffs = [statistics.fmean(done[(label, s, kind)]["task_accuracy"][d] - recipe[(label, s)]["task_accuracy"][d] for d in domains) for s in args.seeds]
            parts.append(f"{name} {statistics.fmean(diffs):+.4f} ± {statistics.stdev(diffs):.4f}")
            if name == "all domains" and label.startswith("hand-made"):
                last = (statistics.fmean(diffs), statistics.stdev(diffs))
        print(f"{label:<28} " + ", ".join(parts))
    print(f"handmade_scaled_minus_plain={last[0]:.4f} noise={last[1]:.4f}")


if __name__ == "__main__":
    main()
