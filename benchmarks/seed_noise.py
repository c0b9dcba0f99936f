"""How large is seed noise, and is the search's best candidate better than bottom-specific beyond it?

    python benchmarks/seed_noise.py --fidelities 5x1000 3x1000 --seeds 0 1 2
    python benchmarks/seed_noise.py --fidelities 3x1000 --seeds 0 1 2 --best-of benchmarks/results/runs

Three candidates (bottom-specific and top-specific at budget 0.1, and the first searched
allocation of ``proxy_fidelity.py``), each trained with every seed (seed changes the
initialisation and the batch order) at every fidelity: the standard deviation of mean val
accuracy over seeds. With ``--best-of``, the best searched candidate of each run of
``--sampler`` in a ``sampler_efficiency.py`` result is trained with the same seeds at that
run's fidelity and compared with bottom-specific: the difference of the seed means against
the sum of the two standard deviations. Results are kept in ``benchmarks/results/trained.jsonl``.
The last line is ``seed_std=<mean std at the first fidelity>`` (or ``best_minus_bottom=<mean
difference> noise=<mean summed std>`` with ``--best-of``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from _quality import RESULTS, Cache, embedded, train, with_fidelity
from mtlsearch._study import space_for
from mtlsearch.models import strategy_allocation
from proxy_fidelity import searched


def spread(settings, allocation, seeds, cache, label):  # type: ignore[no-untyped-def]
    values = [train(settings, allocation, s, cache, label=label)["accuracy"] for s in seeds]
    return statistics.fmean(values), statistics.stdev(values), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fidelities", nargs="+", default=["5x1000"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--best-of", type=Path, help="the runs folder of sampler_efficiency.py (benchmarks/results/runs)")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cache", default=str(RESULTS / "trained.jsonl"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cache = Cache(Path(args.cache))
    base = embedded()
    spec = space_for(base).spec
    bottom = strategy_allocation("bottom-specific", spec, base.granularity, 0.1)  # type: ignore[arg-type]
    if args.best_of is not None:
        runs = [json.loads(f.read_text()) for f in sorted(args.best_of.glob(f"{args.sampler}-*.json"))]
        gaps, noises = [], []
        for run in runs:
            settings = with_fidelity(base, run["fidelity"])
            best = max((t for t in run["trials"] if t["state"] == "COMPLETE" and t["strategy"] == "search"), key=lambda t: t["values"][0])
            b_mean, b_std, _ = spread(settings, best["allocation"], args.seeds, cache, f"best of {args.sampler} seed {run['seed']}")
            r_mean, r_std, _ = spread(settings, bottom, args.seeds, cache, "bottom-specific")
            gaps.append(b_mean - r_mean)
            noises.append(b_std + r_std)
            verdict = "beyond the noise" if abs(b_mean - r_mean) > b_std + r_std else "within the noise"
            print(f"{args.sampler} seed {run['seed']}: best trial {best['number']} {b_mean:.4f} ± {b_std:.4f} vs bottom-specific "
                  f"{r_mean:.4f} ± {r_std:.4f} over seeds {args.seeds} at {run['fidelity']}: {b_mean - r_mean:+.4f}, {verdict}", flush=True)  # fmt: skip
        print(f"best_minus_bottom={statistics.fmean(gaps):.4f} noise={statistics.fmean(noises):.4f}")
        return
    candidates = {
        "bottom-specific": bottom,
        "top-specific": strategy_allocation("top-specific", spec, base.granularity, 0.1),  # type: ignore[arg-type]
        "searched@0.1 #0": searched(0.1, 1, seed=1)[0],
    }
    stds: dict[str, list[float]] = {}
    for fid in args.fidelities:
        settings = with_fidelity(base, fid)
        for label, allocation in candidates.items():
            mean, std, values = spread(settings, allocation, args.seeds, cache, label)
            stds.setdefault(fid, []).append(std)
            print(f"{fid:>8} {label:<16} {mean:.4f} ± {std:.4f}  ({', '.join(f'{v:.4f}' for v in values)})", flush=True)
        print(f"{fid:>8} mean std over seeds: {statistics.fmean(stds[fid]):.4f}")
    print(f"seed_std={statistics.fmean(stds[args.fidelities[0]]):.4f}")


if __name__ == "__main__":
    main()
