"""How many of the first convolution's filters must be task-specific, and does a brief fidelity see it?

    python benchmarks/stem_filters.py --fidelities 10x250 --seeds 0 1 2

On fashion-mux every search converges on the first convolution (``conv1.0``, whose filters
unmix a multiplexed domain's colours), and the searches at 10x250 stop at part of it (3 or 5 of
its 8 filters: docs/search-quality.md, section 5), where the hand-made allocation makes all 8
task-specific. Whether that part is enough is the question this answers: ``conv1.0`` with
``k`` of its filters task-specific and nothing else, for every ``--filters`` k (0 is the shared
model, all of them the hand-made allocation), trained at the preset's fidelity and at every
``--fidelities``, with every seed, in two processes of one torch thread each. Everything trained
is kept in ``benchmarks/results/trained.jsonl``; only rows trained on this kind of CPU are reused.

Prints, per fidelity, each k's mean and spread over seeds, the whole first conv minus each part
paired by seed (mean, std, ratio), and the Spearman correlation of k with the seed-mean
accuracy (does the fidelity see that more filters help). The last line is
``whole_minus_best_part=<at the preset's fidelity> noise=<its std> proxy=<the same at the first
of --fidelities>``, the best part being the part with the highest seed mean at that fidelity.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import pandas as pd

from _quality import RESULTS, Cache, benchmark_name, cpu_kind, embedded, fidelity_name, print_trained, train_many, with_fidelity
from benchmark_separation import paired
from mtlsearch._study import space_for

STEM = "conv1.0"


def stem_width(settings) -> int:  # type: ignore[no-untyped-def]
    """How many filters the first convolution of ``settings``' backbone has."""
    return next(c.out_channels for c in space_for(settings).spec.convs if c.name == STEM)


def report(rows: dict[int, list[dict]], whole: int) -> tuple[float, float]:
    """Prints one fidelity's table; returns the whole conv minus its best part (mean, std)."""
    means = pd.Series({k: statistics.fmean(r["accuracy"] for r in group) for k, group in rows.items()})
    for k, group in rows.items():
        accs = [r["accuracy"] for r in group]
        line = f"  {k} of {whole} filters  {means[k]:.4f} ± {statistics.stdev(accs):.4f}  {[round(a, 4) for a in accs]}"
        if k != whole:
            mean, std, _ = paired(rows, whole, k)
            line += f"   whole minus this: {mean:+.4f} ± {std:.4f} ({mean / std:.1f} x)"
        print(line)
    print(f"  spearman(k, accuracy) = {means.corr(means.index.to_series(), method='spearman'):.3f}")
    mean, std, _ = paired(rows, whole, means.drop(whole).idxmax())
    return mean, std


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--fidelities", nargs="*", default=["10x250"], help="EPOCHSxIMAGES per task besides the preset's")
    parser.add_argument("--filters", type=int, nargs="+", help="task-specific filters of the first conv (default: 0 to all, every other one and the searches' 3 and 5)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--processes", type=int, default=2, help="training processes, one torch thread each")
    parser.add_argument("--cache", default=str(RESULTS / "trained.jsonl"))
    args = parser.parse_args()

    preset = embedded(args.preset)
    whole = stem_width(preset)
    filters = sorted(set(args.filters if args.filters else [*range(0, whole + 1, 2), 3, 5]) | {whole})
    if len(args.seeds) < 2 or not 0 <= min(filters) or max(filters) > whole:
        parser.error(f"--filters must lie in 0..{whole} and --seeds name at least two seeds")
    brief = [s for s in (with_fidelity(preset, f) for f in args.fidelities) if s.fidelity != preset.fidelity]
    fidelities = [*brief, preset]
    jobs = [(s, {STEM: k / whole}, seed, f"{STEM} {k}/{whole}") for s in fidelities for k in filters for seed in args.seeds]
    print(f"{benchmark_name(preset)}: {STEM} with {filters} of {whole} filters task-specific, fidelities "
          f"{[fidelity_name(s.fidelity) for s in fidelities]}, seeds {args.seeds}, on {cpu_kind()}", flush=True)  # fmt: skip
    trained = iter(train_many(jobs, Cache(Path(args.cache)), processes=args.processes, on_row=print_trained))
    found = {}
    for s in fidelities:
        name = fidelity_name(s.fidelity)
        print(f"\n{name}: mean ± std over seeds, then the whole first conv minus each part, paired by seed")
        rows = {k: [next(trained) for _ in args.seeds] for k in filters}
        found[name] = report(rows, whole)
    mean, std = found[fidelity_name(preset.fidelity)]
    proxy = found[fidelity_name(brief[0].fidelity)][0] if brief else mean
    print(f"whole_minus_best_part={mean:.4f} noise={std:.4f} proxy={proxy:.4f}")


if __name__ == "__main__":
    main()
