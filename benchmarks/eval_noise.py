"""How much of the noise of a paired difference is the validation set's, and how much training's?

    python benchmarks/eval_noise.py --seeds 0 1 2

Two candidates trained with the same seed are compared on the same validation images. Their
difference in mean accuracy varies from seed to seed for two reasons: training ends in another
place (the models differ), and the validation set is a finite sample (the images on which the
two disagree are a draw). More validation images shrink only the second. For every pair of
candidates and every seed, the second is computed from the images themselves: the variance of
the mean over tasks of ``correct_a - correct_b`` per image, divided by the number of images
(the sampling variance of the difference, as if the validation images were drawn again). Set
against the variance of the difference over seeds, it says what a larger validation split would
buy.

The candidates (the baselines and the hand-made allocation of ``benchmark_separation.py``) are
trained with the worker's recipe in processes of one torch thread each; every row goes to the
results cache too (where it must repeat a cached row of this CPU kind to the bit), and the
per-image correctness to ``benchmarks/results/eval_noise-<fidelity>-<cpu kind>.npz``, so a
rerun trains nothing. The last line is ``val_share=<mean over pairs>``: the share of the
seed-to-seed variance of a paired difference that the validation sample accounts for.

    python benchmarks/eval_noise.py --by-fidelity "x86_64 AVX512 AuthenticAMD" --seeds 0 1

trains nothing: from the cached rows of that CPU kind, the paired noise at every fidelity
trained there (how the noise falls with longer training).
"""

from __future__ import annotations

import argparse
import math
import statistics
from multiprocessing import get_context

import numpy as np
import torch

import mtlsearch
from _quality import RESULTS, Cache, _trained, cpu_kind, data_id, embedded, fidelity_name, kind_slug, tasks_for, with_fidelity
from benchmark_separation import candidates

LABELS = ("shared", "bottom-specific", "top-specific", "hand-made: first conv only")


def _job(job: tuple) -> tuple[dict, dict[str, np.ndarray]]:  # type: ignore[type-arg]
    """A ``_train_row`` row and, per task, whether each validation image is classified right."""
    settings, allocation, seed, label = job
    torch.set_num_threads(1)
    row, model = _trained(settings, allocation, seed, label)
    right = {t.name: (mtlsearch.predict(model, t.val.images, i).numpy() == t.val.labels).astype(np.int8) for i, t in enumerate(tasks_for(settings))}
    assert all(right[t].mean() == a for t, a in row["task_accuracy"].items()), "the kept predictions are not the evaluated ones"
    return row, right


def noise_by_fidelity(kind: str, seeds: list[int]) -> None:
    """From the results cache alone (no training): for every fidelity with cached rows of the
    embedded default trained on ``kind``, the noise of a paired difference pooled over every
    pair of candidates that has all ``seeds`` (the rows of ``proxy_fidelity.py``), and a single
    candidate's std over seeds."""
    import itertools

    data = data_id(embedded("fashion-mux-scratch"))
    table: dict[str, dict[str, dict[int, float]]] = {}
    for (row_data, key, fid, seed, row_kind), row in Cache(RESULTS / "trained.jsonl").rows.items():
        if row_data == data and row_kind == kind and seed in seeds:
            table.setdefault(fid, {}).setdefault(key, {})[seed] = row["accuracy"]
    print(f"{data}, rows trained on {kind}, seeds {seeds}")
    print(f"{'fidelity':>10} {'candidates':>10} {'paired noise':>13} {'one candidate':>14} {'mean accuracy':>14}")
    for fid, by_key in sorted(table.items(), key=lambda kv: tuple(int(v) for v in kv[0].split("+")[0].split("x"))):
        full = {key: [acc[s] for s in seeds] for key, acc in by_key.items() if set(acc) == set(seeds)}
        if len(full) < 2:
            continue
        pairs = [statistics.variance([x - y for x, y in zip(full[a], full[b])]) for a, b in itertools.combinations(full, 2)]
        single = [statistics.variance(v) for v in full.values()]
        mean = statistics.fmean(v for accs in full.values() for v in accs)
        print(f"{fid:>10} {len(full):>10} {math.sqrt(statistics.fmean(pairs)):13.4f} {math.sqrt(statistics.fmean(single)):14.4f} {mean:14.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fidelity", help="EPOCHSxIMAGES, with +lr<value> for another learning rate (default: the preset's)")
    parser.add_argument("--processes", type=int, default=2, help="training processes, one torch thread each")
    parser.add_argument("--by-fidelity", metavar="CPU_KIND", help="train nothing: the noise at every cached fidelity, from the rows of this CPU kind")
    args = parser.parse_args()
    if args.by_fidelity:
        noise_by_fidelity(args.by_fidelity, args.seeds)
        return
    settings = embedded("fashion-mux-scratch")
    if args.fidelity:
        settings = with_fidelity(settings, args.fidelity)
    fid = fidelity_name(settings.fidelity)
    allocations = {label: a for label, a in candidates(settings).items() if label in LABELS}
    store = RESULTS / f"eval_noise-{fid}-{kind_slug()}.npz"
    kept = dict(np.load(store)) if store.exists() else {}
    cache = Cache(RESULTS / "trained.jsonl")
    jobs = [(settings, allocations[label], seed, label) for label in LABELS for seed in args.seeds if f"{label}|{seed}|{data_id(settings)}|mux-a" not in kept]
    print(f"{len(LABELS) * len(args.seeds)} candidates x seeds, {len(jobs)} to train at {fid} on {cpu_kind()}", flush=True)
    if jobs:
        with get_context("spawn").Pool(args.processes) as pool:
            for row, right in pool.imap_unordered(_job, jobs):
                before = cache.get(row["key"], fid, row["seed"], row["data"])
                if before is not None and before["accuracy"] != row["accuracy"]:
                    print(f"  note: {row['label']} seed {row['seed']} gave {row['accuracy']:.5f}, the cache holds {before['accuracy']:.5f}")
                if before is None:
                    cache.put(row)
                kept |= {f"{row['label']}|{row['seed']}|{row['data']}|{t}": v for t, v in right.items()}
                np.savez_compressed(store, **kept)
                print(f"  {row['label']:<28} seed {row['seed']}: {row['accuracy']:.4f}", flush=True)
    data = data_id(settings)
    tasks = [t.name for t in tasks_for(settings)]

    def bits(label: str, seed: int) -> dict[str, np.ndarray]:
        return {t: kept[f"{label}|{seed}|{data}|{t}"].astype(np.float64) for t in tasks}

    shares = []
    print(f"\npaired differences in mean val accuracy over {len(tasks)} tasks ({len(tasks_for(settings)[0].val.labels)} val images a task), seeds {args.seeds}")
    print(f"{'pair':<56} {'mean':>8} {'std over seeds':>15} {'val sampling std':>17} {'share of variance':>18}")
    for i, a in enumerate(LABELS):
        for b in LABELS[:i]:
            diffs, sampling = [], []
            for seed in args.seeds:
                ra, rb = bits(a, seed), bits(b, seed)
                per_task = {t: ra[t] - rb[t] for t in tasks}
                diffs.append(statistics.fmean(float(d.mean()) for d in per_task.values()))
                sampling.append(sum(float(d.var(ddof=1)) / len(d) for d in per_task.values()) / len(tasks) ** 2)
            over_seeds = statistics.variance(diffs)
            share = statistics.fmean(sampling) / over_seeds if over_seeds else math.nan
            shares.append(share)
            print(f"{a + ' - ' + b:<56} {statistics.fmean(diffs):+8.4f} {math.sqrt(over_seeds):15.4f} {math.sqrt(statistics.fmean(sampling)):17.4f} {share:18.2f}")
    print(f"val_share={statistics.fmean(shares):.2f}")


if __name__ == "__main__":
    main()
