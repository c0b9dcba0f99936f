"""Does the brief training rank candidates the way longer training does? (issue: proxy fidelity)

    python benchmarks/proxy_fidelity.py --seeds 0 1 --threads 1

Twelve candidates on the embedded benchmark: the four baselines at budget 0.1 (shared,
bottom-specific, top-specific, random) and eight feasible allocations drawn from the study's
own search space (four at budget 0.1, four at 0.2). Each is trained at several fidelities
(``EPOCHSxIMAGES`` per task; the embedded default is 5x1000) and at the reference fidelity
13x2000 (5.2 times the default's images: every training image, 13 epochs), for every seed.

Prints each candidate's accuracy at every fidelity, then the Spearman rank correlation of
each fidelity (seed-mean) with the reference (seed-mean), and the reference against itself
across seeds (how far ranks can agree at all). Writes ``benchmarks/results/proxy_fidelity.json``.
The last line is ``spearman=<default fidelity vs reference>``.
"""

from __future__ import annotations

import argparse
import json
import math
import random

import pandas as pd
import torch

from _quality import RESULTS, Cache, candidate, embedded, train, with_fidelity
from mtlsearch._study import space_for
from mtlsearch.models import BASELINES, strategy_allocation

REFERENCE = "13x2000"
DEFAULT = "5x1000"


def searched(budget: float, count: int, seed: int) -> list[dict[str, float]]:
    """``count`` feasible allocations drawn uniformly from the study's space at ``budget``."""
    settings = embedded(budget=budget)
    space = space_for(settings)
    rng = random.Random(seed)
    found: list[dict[str, float]] = []
    while len(found) < count:
        allocation = {u: rng.uniform(0.0, cap) for u, cap in space.caps.items()}
        if candidate(settings, allocation).violation(budget) <= 0:
            found.append(allocation)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--fidelities", nargs="+", default=["2x500", "2x1000", DEFAULT])
    parser.add_argument("--reference", default=REFERENCE)
    parser.add_argument("--searched", type=int, default=4, help="searched allocations per budget (0.1 and 0.2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--cache", default=str(RESULTS / "trained.jsonl"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cache = Cache(__import__("pathlib").Path(args.cache))
    base = embedded()
    spec = space_for(base).spec
    candidates = [(s, strategy_allocation(s, spec, base.granularity, 0.1, seed=base.seed)) for s in BASELINES]  # type: ignore[arg-type]
    candidates += [(f"searched@0.1 #{i}", a) for i, a in enumerate(searched(0.1, args.searched, seed=1))]
    candidates += [(f"searched@0.2 #{i}", a) for i, a in enumerate(searched(0.2, args.searched, seed=2))]
    fidelities = [*args.fidelities, args.reference]
    rows = []
    for fid in fidelities:  # cheap fidelities first: partial results are useful early
        settings = with_fidelity(base, fid)
        for label, allocation in candidates:
            for seed in args.seeds:
                r = train(settings, allocation, seed, cache, label=label)
                rows.append({"candidate": label, "fidelity": fid, "seed": seed, "accuracy": r["accuracy"],
                             "specific_fraction": r["specific_fraction"], "params": r["params"], "seconds": r["seconds"]})  # fmt: skip
                print(f"  {fid:>8} seed {seed} {label:<16} specific {r['specific_fraction']:.3f}  accuracy {r['accuracy']:.4f}  {r['seconds']:5.1f} s", flush=True)
    frame = pd.DataFrame(rows)
    means = frame.pivot_table(index="candidate", columns="fidelity", values="accuracy", aggfunc="mean")[fidelities]
    seconds = frame.groupby("fidelity")["seconds"].mean()
    print(means.round(4).to_string())
    spearman = {fid: float(means[fid].corr(means[args.reference], method="spearman")) for fid in fidelities[:-1]}
    per_seed = {
        fid: [float(frame[(frame.fidelity == fid) & (frame.seed == s)].set_index("candidate")["accuracy"]
                    .corr(frame[(frame.fidelity == args.reference) & (frame.seed == s)].set_index("candidate")["accuracy"], method="spearman"))
              for s in args.seeds]
        for fid in fidelities[:-1]
    }  # fmt: skip
    ceiling = math.nan
    if len(args.seeds) >= 2:
        ref = frame[frame.fidelity == args.reference].pivot_table(index="candidate", columns="seed", values="accuracy")
        ceiling = float(ref[args.seeds[0]].corr(ref[args.seeds[1]], method="spearman"))
    for fid in fidelities[:-1]:
        print(f"{fid:>8} vs {args.reference}: spearman {spearman[fid]:.3f} (seed-mean), per seed {[round(v, 3) for v in per_seed[fid]]}, "
              f"{seconds[fid]:.1f} s a candidate vs {seconds[args.reference]:.1f} s")  # fmt: skip
    print(f"{args.reference} seed {args.seeds[0]} vs seed {args.seeds[-1]}: spearman {ceiling:.3f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "proxy_fidelity.json").write_text(json.dumps({
        "reference": args.reference, "seeds": args.seeds, "rows": rows, "spearman": spearman,
        "spearman_per_seed": per_seed, "reference_across_seeds": ceiling, "seconds": seconds.to_dict(),
    }, indent=1))  # fmt: skip
    headline = DEFAULT if DEFAULT in spearman else fidelities[0]
    print(f"spearman={spearman[headline]:.3f}")


if __name__ == "__main__":
    main()
