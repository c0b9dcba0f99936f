"""Does the benchmark tell allocations apart? The baselines, a hand-made allocation, 3 seeds.

    python benchmarks/benchmark_separation.py --fidelity 30x250 --seeds 0 1 2
    python benchmarks/benchmark_separation.py --preset fashion-domains --fidelity 5x1000
    python benchmarks/benchmark_separation.py --variant mux-500 --fidelity 12x500 --seeds 0 1 2 3 4

Trains, at the preset's budget and granularity, the four baselines (shared, bottom-specific,
top-specific, random), the hand-made allocation of the benchmark (on fashion-mux: only the
first convolution task-specific, from how the domains were built: the multiplexed domains need
their own cross-channel mix at the input, the plain ones lose accuracy wherever their early
layers are split) and the independent models (the 100% reference, outside any budget), each
with every seed, on the preset's data or (``--variant``) on a fashion-mux variant of
``mux_variants.py`` built in memory; every result is kept in ``benchmarks/results/trained.jsonl``, and only rows
trained on this kind of CPU (and recorded as such) are reused.

Prints every candidate's mean and spread, the noise of a difference between two candidates
trained with the same seed (pooled over every pair: the ``noise`` a preset states, which the
table after a run judges differences against), then the three measurements of the benchmark issue:
best minus worst baseline against the mean seed std; bottom- minus top-specific paired by
seed against the std of that difference; the hand-made allocation minus the best baseline,
paired by seed, against the std of that difference; and where the benchmark has groups of
domains built alike (fashion-mux: multiplexed and plain), each paired difference on each group,
which says where a gain or a loss comes from. Writes
``benchmarks/results/separation-<dataset>[-variant-<name>]-<fidelity>-<cpu kind>.json`` (``-<N>seeds`` before the kind with other seeds). The last line is
``handmade_minus_best=<mean> noise=<std of the paired difference>``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics

from _quality import RESULTS, Cache, benchmark_name, cpu_kind, embedded, fidelity_name, kind_slug, print_trained, train_many, with_fidelity
from mtlsearch._study import space_for
from mtlsearch.models import BASELINES, strategy_allocation

# How each embedded benchmark was built says where its task-specific filters belong.
HANDMADE = {"fashion-mux": ("first conv only", {"conv1.0": 1.0}), "fashion-domains": ("stem only", {"stem": 1.0})}
# Domains built alike, whose paired differences are reported together: where a gain comes from.
GROUPS = {"fashion-mux": {"multiplexed": ("mux-a", "mux-b", "mux-c", "mux-d"), "plain": ("plain-a", "plain-b", "plain-c", "plain-d")}}


def candidates(settings) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    spec = space_for(settings).spec
    out = {s: strategy_allocation(s, spec, settings.granularity, settings.budget, seed=settings.seed) for s in BASELINES}
    label, allocation = HANDMADE[settings.dataset]
    out[f"hand-made: {label}"] = allocation
    out["independent"] = strategy_allocation("independent", spec, settings.granularity, 1.0)
    return out


def paired(rows: dict[str, list[dict]], a: str, b: str) -> tuple[float, float, list[float]]:
    diffs = [x["accuracy"] - y["accuracy"] for x, y in zip(rows[a], rows[b])]
    return statistics.fmean(diffs), statistics.stdev(diffs), diffs


def by_group(rows: dict[str, list[dict]], a: str, b: str, groups: dict[str, tuple[str, ...]]) -> dict[str, tuple[float, float]]:
    """``a`` minus ``b`` paired by seed on each group's mean accuracy: mean and std over seeds."""
    out = {}
    for name, domains in groups.items():
        diffs = [statistics.fmean(x["task_accuracy"][d] - y["task_accuracy"][d] for d in domains) for x, y in zip(rows[a], rows[b])]
        out[name] = (statistics.fmean(diffs), statistics.stdev(diffs))
    return out


def report(rows: dict[str, list[dict]], groups: dict[str, tuple[str, ...]]) -> dict:
    """Prints every candidate's mean and spread, the pooled noise, the benchmark issue's three
    measurements (target 2 for every ``hand-made`` label; the first is the benchmark's own) and
    each paired difference by group of domains; returns them for the results file."""
    tasks = list(next(iter(rows.values()))[0]["task_accuracy"])
    summary = {}
    for label, group in rows.items():
        accs = [r["accuracy"] for r in group]
        per_task = {t: statistics.fmean(r["task_accuracy"][t] for r in group) for t in tasks}
        summary[label] = {"mean": statistics.fmean(accs), "std": statistics.stdev(accs), "seeds": accs, "tasks": per_task,
                          "specific_fraction": group[0]["specific_fraction"], "seconds": statistics.fmean(r["seconds"] for r in group)}  # fmt: skip
        print(f"{label:<26} specific {group[0]['specific_fraction']:.4f}  {summary[label]['mean']:.4f} ± {summary[label]['std']:.4f}  "
              + " ".join(f"{t}={v:.3f}" for t, v in per_task.items()))  # fmt: skip
    baselines = [s for s in BASELINES if s in rows]  # a probe may leave some out
    means = {s: summary[s]["mean"] for s in baselines}
    labels = list(rows)
    pooled = math.sqrt(statistics.fmean(paired(rows, a, b)[1] ** 2 for i, a in enumerate(labels) for b in labels[:i]))
    print(f"noise of a difference between two candidates trained with the same seed (pooled over every pair): {pooled:.4f}")
    best = worst = None
    spread = seed_std = math.nan
    if len(baselines) >= 2:
        best, worst = max(means, key=means.get), min(means, key=means.get)  # type: ignore[arg-type]
        seed_std = statistics.fmean(summary[s]["std"] for s in baselines)
        spread = means[best] - means[worst]
        print(f"1a. best minus worst baseline ({best} - {worst}): {spread:+.4f}, {spread / seed_std:.1f} x the mean seed std {seed_std:.4f} (target 4)")
    elif baselines:
        best = baselines[0]
    bt = None
    if "bottom-specific" in rows and "top-specific" in rows:
        bt_mean, bt_std, diffs = bt = paired(rows, "bottom-specific", "top-specific")
        print(f"1b. bottom- minus top-specific, paired by seed: {bt_mean:+.4f} ± {bt_std:.4f} ({[round(d, 4) for d in diffs]}), "
              f"{abs(bt_mean) / bt_std:.1f} x its std (target 3)")  # fmt: skip
    handmades = [label for label in rows if label.startswith("hand-made")] if best else []
    for handmade in handmades:
        hm_mean, hm_std, hm = paired(rows, handmade, best)
        print(f"2.  {handmade} minus the best baseline ({best}), paired by seed: {hm_mean:+.4f} ± {hm_std:.4f} "
              f"({[round(d, 4) for d in hm]}), {hm_mean / hm_std:.1f} x its std (target 3)")  # fmt: skip
    decomposed = {}
    pairs = [("bottom-specific", "top-specific")] * (bt is not None) + [pair for h in handmades for pair in ((h, best), (h, "shared")) if pair[1] in rows]
    for a, b in dict.fromkeys(pairs):  # once each, where the best baseline is shared
        decomposed[f"{a} - {b}"] = parts = by_group(rows, a, b, groups) if groups else {}
        if parts:
            print(f"    {a} minus {b} by domain group: " + ", ".join(f"{g} {m:+.4f} ± {s:.4f}" for g, (m, s) in parts.items()))
    return {
        "candidates": summary, "best_minus_worst": spread, "difference_noise": pooled, "mean_seed_std": seed_std,
        "bottom_minus_top": bt, "handmade_minus_best": paired(rows, handmades[0], best) if handmades else (math.nan, math.nan, []), "best": best, "by_group": decomposed,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--fidelity", help="EPOCHSxIMAGES, with +lr<value> for another learning rate (default: the preset's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", help="a fashion-mux variant of benchmarks/mux_variants.py, built in memory, instead of the preset's data")
    parser.add_argument("--processes", type=int, default=2, help="training processes, one torch thread each")
    parser.add_argument("--cache", default=str(RESULTS / "trained.jsonl"))
    args = parser.parse_args()
    if len(set(args.seeds)) < 2:
        parser.error("--seeds needs two or more different seeds: the noise it reports is a spread over seeds")
    from pathlib import Path

    settings = embedded(args.preset)
    if args.fidelity:
        settings = with_fidelity(settings, args.fidelity)
    fid = fidelity_name(settings.fidelity)
    cache = Cache(Path(args.cache))
    allocations = candidates(settings)
    jobs = [(settings, allocation, seed, label) for label, allocation in allocations.items() for seed in args.seeds]
    trained = train_many(jobs, cache, processes=args.processes, on_row=print_trained, variant=args.variant)
    rows: dict[str, list[dict]] = {}
    for (_, _, _, label), row in zip(jobs, trained):
        rows.setdefault(label, []).append(row)
    dataset = f"{settings.dataset}-variant-{args.variant}" if args.variant else settings.dataset
    dataset += benchmark_name(settings).removeprefix(settings.dataset)
    print(f"{dataset}, {settings.backbone}, {settings.granularity} units, budget {settings.budget:g}, fidelity {fid}, seeds {args.seeds}")
    found = report(rows, GROUPS.get(settings.dataset, {}))
    RESULTS.mkdir(exist_ok=True)
    seeds = "" if args.seeds == [0, 1, 2] else f"-{len(args.seeds)}seeds"
    (RESULTS / f"separation-{dataset}-{fid}{seeds}-{kind_slug()}.json").write_text(json.dumps({
        "dataset": dataset, "fidelity": fid, "seeds": args.seeds, "cpu": cpu_kind(), **found,
    }, indent=1))  # fmt: skip
    hm_mean, hm_std, _ = found["handmade_minus_best"]
    print(f"handmade_minus_best={hm_mean:.4f} noise={hm_std:.4f}")


if __name__ == "__main__":
    main()
