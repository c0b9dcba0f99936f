"""Does the brief training rank candidates the way longer training does, and reproducibly?

    python benchmarks/proxy_fidelity.py --seeds 0 1
    python benchmarks/proxy_fidelity.py --fidelities 10x250 15x250 --seeds 0 1
    python benchmarks/proxy_fidelity.py --variant mux-500 --fidelity 12x500 --fidelities 5x500 --seeds 0 1
    python benchmarks/proxy_fidelity.py --weights benchmarks/results/pretrained/resnet18-narrow-grey-6ep-2000img-seed0.pt --seeds 0 1

Candidates on a preset's benchmark (the embedded default unless ``--preset``): the four
baselines at the preset's budget, the hand-made allocation of ``benchmark_separation.py`` and
``--searched`` allocations drawn from the study's own search space (random ``total`` on its
log scale and random shares: what random search proposes). Each is trained at every
``--fidelities`` (``EPOCHSxIMAGES`` per task; the preset's own is added) and at the
``--reference`` fidelity (three times the preset's epochs on the same images: on fashion-mux
the 250 training images of a domain are all it has), for every seed, in two processes of one
torch thread each. ``--variant`` ranks them on a variant of ``mux_variants.py`` instead (its
default fidelity given with ``--fidelity``). Everything trained is kept in ``benchmarks/results/trained.jsonl``; only rows
trained on this kind of CPU (and recorded as such) are reused.

Prints each candidate's accuracy at every fidelity, then the Spearman rank correlation of each
fidelity (seed-mean) with the reference (seed-mean), and of every fidelity with itself across
every two seeds (for the reference: how far ranks can agree at all). Writes ``benchmarks/results/proxy_fidelity-<dataset>-<reference>-<cpu kind>.json``.
With ``--across-kinds`` it also reads the same candidates, fidelities and seeds as every other
kind of CPU trained them (rows already in the cache; nothing of another kind is trained): a
kind redraws much of every seed's noise (docs/search-quality.md, section 2a; not all of it,
section 2b, last part), so each (kind, seed) is one draw of the ranking. It prints, per fidelity, the Spearman between every
two draws (mean and range; then apart, the pairs of one seed on two kinds and the pairs of two
seeds, which would agree alike if a kind were a draw of its own) and the pooled draws' mean
against the pooled reference's.
The last line is ``spearman=<preset fidelity vs reference>``; with ``--reference`` the preset's own
fidelity and nothing cheaper, the preset's fidelity against itself across seeds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
from pathlib import Path

import pandas as pd

from _quality import RESULTS, Cache, _cached, _job_data, benchmark_name, cpu_kind, embedded, fidelity_name, from_checkpoint, kind_slug, print_trained, train_many, with_fidelity
from benchmark_separation import candidates as fixed_candidates
from mtlsearch._space import SHARE_PREFIX, TOTAL_PARAM
from mtlsearch._study import space_for


def searched(settings, count: int, seed: int) -> list[dict[str, float]]:  # type: ignore[no-untyped-def]
    """``count`` allocations drawn from the study's space as random search draws them."""
    space = space_for(settings)
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        total = math.exp(rng.uniform(math.log(space.smallest), math.log(settings.budget)))
        found.append(space.allocation(total, {u: rng.random() for u in space.unit_convs}))
    return found


def drawn_params(settings, allocation) -> dict[str, float]:  # type: ignore[no-untyped-def]
    params = space_for(settings).params(allocation)
    return {"total": params.get(TOTAL_PARAM, 0.0), **{k.removeprefix(SHARE_PREFIX): v for k, v in params.items() if k != TOTAL_PARAM}}


def across_kinds(cache: Cache, jobs: list, variant: str | None) -> pd.DataFrame:
    """The accuracy of every job's candidate, fidelity and seed on every kind of CPU that has
    it cached: one row per (candidate, fidelity, kind, seed)."""
    rows = []
    for settings, allocation, seed, label in jobs:
        rows += [{"candidate": label, "fidelity": fidelity_name(settings.fidelity), "kind": kind, "seed": seed, "accuracy": found["accuracy"]}
                 for kind in cache.kinds if (found := _cached(settings, allocation, seed, cache, _job_data(settings, variant), kind)) is not None]  # fmt: skip
    return pd.DataFrame(rows)


def draws_report(frame: pd.DataFrame, fidelities: list[str], reference: str) -> dict:
    """Per fidelity: the Spearman between every two complete draws (kind, seed), and the mean
    of the draws against the mean of the reference's draws (a fidelity's draws that rank every
    candidate only)."""
    out: dict[str, dict] = {}
    table = frame.pivot_table(index="candidate", columns=["fidelity", "kind", "seed"], values="accuracy")
    pooled_ref = table[reference].dropna(axis=1).mean(axis=1) if reference in table else None
    for fid in fidelities:
        if fid not in table:
            continue
        draws = table[fid].dropna(axis=1)  # a draw missing a candidate ranks nothing
        columns = list(itertools.combinations(draws.columns, 2))
        pairs = [float(draws[a].corr(draws[b], method="spearman")) for a, b in columns]
        found: dict = {"draws": [f"{k} seed {s}" for k, s in draws.columns], "pairwise": pairs}
        line = f"{fid:>8}: {draws.shape[1]} draws"
        if len(pairs) == 1:
            line += f", which agree at {pairs[0]:.3f}"
        elif pairs:
            line += f", two of which agree at {statistics.fmean(pairs):.3f} on average ({min(pairs):.3f}-{max(pairs):.3f}, {len(pairs)} pairs)"
        # are two kinds independent draws? then one seed on two kinds agrees no better than two seeds do
        same = [r for (a, b), r in zip(columns, pairs) if a[1] == b[1] and a[0] != b[0]]
        other = [r for (a, b), r in zip(columns, pairs) if a[1] != b[1]]
        if same and other:
            found["same_seed_other_kind"], found["other_seed"] = same, other
            line += f"; one seed on two kinds {statistics.fmean(same):.3f} ({len(same)}), two seeds {statistics.fmean(other):.3f} ({len(other)})"
        if fid != reference and pooled_ref is not None and draws.shape[1]:
            found["pooled_vs_reference"] = float(draws.mean(axis=1).corr(pooled_ref, method="spearman"))
            line += f"; their mean against the reference's mean: {found['pooled_vs_reference']:.3f}"
        print(line)
        out[fid] = found
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--fidelities", nargs="*", default=[], help="cheaper fidelities to rank too (the preset's is always in)")
    parser.add_argument("--fidelity", help="EPOCHSxIMAGES of the default under test (default: the preset's)")
    parser.add_argument("--reference", help="EPOCHSxIMAGES (default: 3 x the default's epochs, same images)")
    parser.add_argument("--variant", help="a fashion-mux variant of benchmarks/mux_variants.py, built in memory, instead of the preset's data")
    parser.add_argument("--searched", type=int, default=8, help="allocations drawn from the search space")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--cache", default=str(RESULTS / "trained.jsonl"))
    parser.add_argument("--weights", help="a checkpoint every candidate starts from (pretrain_backbone.py; its rows kept apart by its digest)")
    parser.add_argument("--across-kinds", action="store_true", help="also rank with every other kind of CPU's cached rows, each (kind, seed) a draw")
    args = parser.parse_args()
    base = embedded(args.preset)
    if args.weights:
        base = from_checkpoint(base, args.weights)
    if args.fidelity:
        base = with_fidelity(base, args.fidelity)
    default = fidelity_name(base.fidelity)
    reference = args.reference or f"{3 * base.fidelity.epochs}x{base.fidelity.train_size}"
    fidelities = list(dict.fromkeys([*args.fidelities, default, reference]))
    cache = Cache(Path(args.cache))
    candidates = [*fixed_candidates(base).items()][:-1]  # the baselines and the hand-made one, not independent
    candidates += [(f"searched #{i}", a) for i, a in enumerate(searched(base, args.searched, seed=1))]
    jobs = [(with_fidelity(base, fid), allocation, seed, label) for fid in fidelities for label, allocation in candidates for seed in args.seeds]

    trained = train_many(jobs, cache, processes=args.processes, on_row=print_trained, variant=args.variant)
    rows = [{"candidate": label, "fidelity": fidelity_name(s.fidelity), "seed": seed, "accuracy": r["accuracy"],
             "specific_fraction": r["specific_fraction"], "params": r["params"], "seconds": r["seconds"]}
            for (s, _, seed, label), r in zip(jobs, trained)]  # fmt: skip
    frame = pd.DataFrame(rows)
    means = frame.pivot_table(index="candidate", columns="fidelity", values="accuracy", aggfunc="mean")[fidelities]
    seconds = frame.groupby("fidelity")["seconds"].mean()
    dataset = f"{base.dataset}-variant-{args.variant}" if args.variant else base.dataset
    dataset += benchmark_name(base).removeprefix(base.dataset)
    print(f"{dataset}, {base.granularity} units, budget {base.budget:g}, seeds {args.seeds}, reference {reference}")
    print(means.sort_values(reference, ascending=False).round(4).to_string())

    def ranks(fid: str, seed: int) -> pd.Series:
        return frame[(frame.fidelity == fid) & (frame.seed == seed)].set_index("candidate")["accuracy"]

    spearman = {fid: float(means[fid].corr(means[reference], method="spearman")) for fid in fidelities[:-1]}
    per_seed = {fid: [float(ranks(fid, s).corr(ranks(reference, s), method="spearman")) for s in args.seeds] for fid in fidelities[:-1]}
    def print_across_seeds(fid: str) -> float:
        """Prints the Spearman of one fidelity with itself for every two seeds; returns their mean."""
        pairs = {(a, b): float(ranks(fid, a).corr(ranks(fid, b), method="spearman")) for a, b in itertools.combinations(args.seeds, 2)}
        if not pairs:
            return math.nan
        mean = statistics.fmean(pairs.values())
        each = ", ".join(f"seeds {a} and {b} {v:.3f}" for (a, b), v in pairs.items())
        print(f"{fid:>8} against itself: spearman {mean:.3f}" + (f" on average ({each})" if len(pairs) > 1 else f" ({each})"))
        return mean

    for fid in fidelities[:-1]:
        print(f"{fid:>8} vs {reference}: spearman {spearman[fid]:.3f} (seed-mean), per seed {[round(v, 3) for v in per_seed[fid]]}, "
              f"{seconds[fid]:.1f} s a candidate vs {seconds[reference]:.1f} s (one thread, two processes)")  # fmt: skip
    ceiling = print_across_seeds(reference)
    for fid in fidelities[:-1]:
        print_across_seeds(fid)
    kinds = {}
    if args.across_kinds:
        print("every kind of CPU that has these rows, each (kind, seed) a draw:")
        kinds = draws_report(across_kinds(cache, jobs, args.variant), fidelities, reference)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"proxy_fidelity-{dataset}-{reference}-{kind_slug()}.json").write_text(json.dumps({
        "dataset": dataset, "reference": reference, "seeds": args.seeds, "cpu": cpu_kind(), "rows": rows, "spearman": spearman,
        "spearman_per_seed": per_seed, "reference_across_seeds": ceiling, "seconds": seconds.to_dict(),
        "candidates": {label: drawn_params(base, a) for label, a in candidates}, "across_kinds": kinds,
    }, indent=1))  # fmt: skip
    # the preset's fidelity against the reference; when the preset's is the reference, the cheapest
    # one measured; when nothing else was measured, the reference against itself across seeds
    print(f"spearman={spearman[default if default in spearman else fidelities[0]] if spearman else ceiling:.3f}")


if __name__ == "__main__":
    main()
