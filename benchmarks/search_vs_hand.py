"""Does the search find what the hand strategies miss? Its best candidates, retrained with 3 seeds.

    python benchmarks/search_vs_hand.py --sampler tpe --fidelity 10x250
    python benchmarks/search_vs_hand.py --preset fashion-domains --sampler tpe --fidelity 3x1000
    python benchmarks/search_vs_hand.py --storage sqlite:///mtlsearch.db --study-names embedded-resnet18-narrow-budget0.1

Reads the runs of ``sampler_efficiency.py`` (``benchmarks/results/runs/``) for one sampler and
fidelity. From each run it takes the best searched candidate (the most accurate trained trial
that is no baseline) of the whole run and of its first ``--within`` trained trials, and trains
them, every baseline and the benchmark's hand-made allocation (``benchmark_separation.py``)
with ``--seeds`` at the preset's fidelity (the search may have run at a cheaper one): the
retraining is what tells a real gain from a lucky seed. Everything trained is kept in
``benchmarks/results/trained.jsonl``; only rows trained on this kind of CPU are reused, so that
every difference is paired on one machine's draws of the noise. With ``--storage`` and
``--study-names`` it reads studies that ``mtlsearch run`` made instead (each one a run, its trained
trials in the order they were numbered; they must be studies of ``--preset``'s settings, their
``--seed`` aside). With ``--run-kind`` it reads the runs another kind of CPU kept: the search's
picks are that machine's, their retraining (and every row they are compared with) this one's.

Prints, per run, the best candidate against every baseline, paired by seed (mean and std of
the difference), and the share of the gap from the best strategy to the hand-made allocation
that the best candidate of the first ``--within`` trials recovers. The last line is
``best_minus_bottom=<the smallest of the runs' mean paired difference> noise=<the largest std
of that difference>``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _quality import RESULTS, Cache, benchmark_name, embedded, fidelity_name, kept_run, print_trained, run_trials, train_many
from benchmark_separation import candidates

BOTTOM = "bottom-specific"


def best_searched(run: dict, within: int | None = None) -> dict:
    """The most accurate trained trial of a run that is no baseline (among its first ``within``)."""
    trained = [t for t in run["trials"] if t["kind"] == "trained"][:within]
    searched = [t for t in trained if t["strategy"] in (None, "search")]
    return max(searched, key=lambda t: t["accuracy"])


def study_run(storage: str, name: str, settings) -> dict:  # type: ignore[no-untyped-def]
    """A study of ``mtlsearch run`` as a run of ``sampler_efficiency.py``: its trained trials."""
    from mtlsearch._storage import open_storage
    from mtlsearch._study import load_study, stored_settings

    study = load_study(open_storage(storage), name)
    stored = stored_settings(study)
    # its seed may differ (runs of one preset with --seed 1, 2): the retraining's seeds are --seeds
    differences = [d for d in stored.differences(settings) if not d.startswith("seed:")] if stored else ["it stores none"]
    if differences:
        raise SystemExit(f"study {name!r} is not a study of this preset's settings: {'; '.join(differences)}")
    return {"trials": run_trials(study)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--fidelity", help="the fidelity the runs searched at (default: the preset's)")
    parser.add_argument("--run-seeds", type=int, nargs="+", default=[0, 1, 2], help="the sampler seeds of the runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of the retraining")
    parser.add_argument("--within", type=int, default=20, help="trained trials the search is given for the gap it recovers")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--cache", default=str(RESULTS / "trained.jsonl"))
    parser.add_argument("--run-kind", help="read the runs kept on this kind of CPU (as their file names spell it, "
                        "e.g. 'x86_64 AVX512 GenuineIntel'; default: this machine's); the retraining is this machine's")
    parser.add_argument("--storage", help="read the runs from studies of `mtlsearch run` in this storage instead")
    parser.add_argument("--study-names", nargs="+", default=[], help="with --storage: the studies, each one a run")
    args = parser.parse_args()
    settings = embedded(args.preset)
    searched_at = args.fidelity or fidelity_name(settings.fidelity)
    runs: dict  # run label (a sampler seed, or a study's name) -> run
    if args.storage:
        if not args.study_names:
            parser.error("--storage needs --study-names")
        runs = {name: study_run(args.storage, name, settings) for name in args.study_names}
    else:
        runs = {seed: kept_run(benchmark_name(settings), args.sampler, searched_at, seed, args.run_kind) for seed in args.run_seeds}
    missing = [seed for seed, run in runs.items() if run is None]
    if missing:
        where = f"kept on {args.run_kind!r}" if args.run_kind else "kept on this kind of CPU"
        parser.error(f"no {args.sampler} run at {searched_at} with sampler seeds {missing} {where}: run benchmarks/sampler_efficiency.py "
                     "first, or name the kind it ran on with --run-kind")  # fmt: skip
    fixed = candidates(settings)
    picks: dict[str, dict[str, float]] = {}
    for seed, run in runs.items():
        for label, trial in ((f"run {seed}: best", best_searched(run)), (f"run {seed}: best of {args.within}", best_searched(run, args.within))):
            picks[label] = trial["allocation"]
            print(f"{label:<22} trial {trial['number']:>3}, {trial['specific_fraction']:.3f} task-specific, "
                  f"{trial['accuracy']:.4f} at {searched_at}")  # fmt: skip
    jobs = [(settings, allocation, seed, label) for label, allocation in {**fixed, **picks}.items() for seed in args.seeds]
    rows = train_many(jobs, Cache(Path(args.cache)), processes=args.processes, on_row=print_trained)
    by_label: dict[str, list[float]] = {}
    for (_, _, _, label), row in zip(jobs, rows):
        by_label.setdefault(label, []).append(row["accuracy"])

    def paired(a: str, b: str) -> tuple[float, float]:
        diffs = [x - y for x, y in zip(by_label[a], by_label[b])]
        return statistics.fmean(diffs), statistics.stdev(diffs)

    print(f"\n{settings.dataset}, retrained at {fidelity_name(settings.fidelity)}, seeds {args.seeds}: mean ± std over seeds")
    for label, accs in by_label.items():
        print(f"  {label:<30} {statistics.fmean(accs):.4f} ± {statistics.stdev(accs):.4f}  {[round(a, 4) for a in accs]}")
    baselines = [label for label in fixed if label != "independent" and not label.startswith("hand-made")]
    handmade = next(label for label in fixed if label.startswith("hand-made"))
    best_strategy = max(baselines, key=lambda label: statistics.fmean(by_label[label]))
    gap = statistics.fmean(by_label[handmade]) - statistics.fmean(by_label[best_strategy])
    margins, noises = [], []
    for seed in runs:
        best = f"run {seed}: best"
        print(f"\n{best} against every baseline, paired by seed (difference, its std, ratio):")
        for label in [*baselines, handmade]:
            mean, std = paired(best, label)
            print(f"  - {label:<30} {mean:+.4f} ± {std:.4f}  ({mean / std if std else float('inf'):.1f} x)")
        mean, std = paired(best, BOTTOM)
        margins.append(mean)
        noises.append(std)
        early = statistics.fmean(by_label[f"run {seed}: best of {args.within}"]) - statistics.fmean(by_label[best_strategy])
        print(f"  best of the first {args.within} trials recovers {early / gap:.0%} of the gap from {best_strategy} to the hand-made "
              f"allocation ({early:+.4f} of {gap:+.4f})")  # fmt: skip
    print(f"best_minus_bottom={min(margins):.4f} noise={max(noises):.4f}")


if __name__ == "__main__":
    main()
