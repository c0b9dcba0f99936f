"""How much of the sampler comparison is the noise? The samplers on a landscape drawn from measured rows.

    python benchmarks/sampler_noise.py --kind "x86_64 AVX512 GenuineIntel" --scales 0 0.5 1 --objectives 5
    python benchmarks/sampler_noise.py --samplers tpe+startup10 tpe+univariate nsga2 random --scales 1
    python benchmarks/sampler_noise.py --samplers tpe random --scales 1 --plateau-at 8
    python benchmarks/sampler_noise.py --samplers tpe random --scales 1 --decisive layer3.0.conv1 --plateau-at 32

The search issue asks the default sampler to reach random search's 40-trial mean hypervolume
within 20 trained trials in each of three runs (``sampler_efficiency.py``). Those runs train
every candidate once, with one seed, so a run's hypervolume is partly the luck of that seed.
This script asks what the samplers do when the noise is known: each (sampler, sampler seed) is
a real study on the preset driven to ``--n-trials`` trained trials by the real worker loop
(``mtlsearch.run_worker``), the budget space and the baselines as in a real run, but a
candidate is scored, not trained. Its score is the mean of the measured rows (``--fidelity``,
training seed 0, one ``--kind`` of CPU, from ``benchmarks/results/trained.jsonl``) in its group
of task-specific filters of the first convolution (none, one or two, three or more: the one
feature that decides accuracy on fashion-mux, docs/search-quality.md, section 5), plus a
normal draw of those rows' spread around their mean, times each of ``--scales``. The draw is
seeded by the candidate and by the objective, so a candidate proposed again within a run scores
the same (as a cached result does), and every run on one objective sees the same scores (as
every real run trains with one seed). ``--objectives`` such draws are made per scale; on each,
every sampler's runs (``--seeds``) are judged against random search's exactly as
``sampler_efficiency.py`` judges them. Scale 0 is the landscape without noise; scale 1 is the
spread the real rows have: the seed noise and whatever else the one feature does not explain
(what a sampler could learn beyond it is noise here: the pessimistic side for a model-based
sampler). ``tpe+startupN`` and ``tpe+univariate`` are the package's TPE with N random proposals
after the baselines, or with one estimator per parameter, built here to be compared.
``--plateau-at K`` asks what a benchmark would need instead: the same scores, but the plateau's
from K filters of the first conv on (the measured plateau starts at 3), so that random search
draws it less often; ``--decisive UNIT`` puts the same groups on another conv's filters (a
larger unit, which a random share fills less often). Those landscapes are not measured, and the
script says so.

Prints the landscape, then per scale and sampler the mean hypervolume after 10, 20, 30 and 40
trained trials, how many searched candidates a run trained on the plateau (three or more
filters), and per objective the trained trials the sampler's worst run needed to reach random
search's 40-trial mean. The last line is ``met_at_scale1=<objectives on which the first sampler
reached it within 20 trials in every run>/<objectives>`` (at the scale nearest 1). A run takes
10-30 s (no training), ``--processes`` at a time.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import random
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import optuna
import torch

import mtlsearch
from _quality import RESULTS, Cache, data_id, embedded, with_fidelity
from mtlsearch import TrainResult
from mtlsearch._figures import hypervolume_info
from mtlsearch._study import make_sampler, space_for
from mtlsearch.errors import SearchStalledError
from mtlsearch.models import BASELINES
from sampler_efficiency import reach, worst
from stem_filters import STEM

GROUPS = ("none", "one or two", "three or more")
MEASURED_PLATEAU = 3  # the first conv's filters from which the measured rows are alike


def filters_of(allocation: dict[str, float], out_channels: int, unit: str = STEM) -> int:
    """How many of ``unit``'s ``out_channels`` filters (the first conv's unless named) ``allocation``
    makes task-specific."""
    return round(allocation.get(unit, 0.0) * out_channels)


def unit_width(settings, unit: str = STEM) -> int:  # type: ignore[no-untyped-def]
    widths = {c.name: c.out_channels for c in space_for(settings).spec.convs}
    if unit not in widths:
        raise ValueError(f"--decisive {unit!r} is not a conv of {settings.backbone}; its convs: {', '.join(widths)}")
    return widths[unit]


def group_of(k: int, plateau_at: int = MEASURED_PLATEAU) -> str:
    """The counts of the first conv's filters that measure alike (docs/search-quality.md,
    section 5, ``stem_filters.py``: none; one or two, within the noise of bottom-specific;
    three and more, within the noise of all eight). ``plateau_at`` moves where the last group
    begins, for a landscape that is not measured (``--plateau-at``)."""
    return GROUPS[0] if k == 0 else GROUPS[1] if k < plateau_at else GROUPS[2]


@dataclasses.dataclass(frozen=True)
class Landscape:
    """Per group of first-conv counts: the measured rows' mean accuracy, the std of the rows
    around it, and how many rows there were."""

    mean: dict[str, float]
    spread: dict[str, float]
    rows: dict[str, int]

    @classmethod
    def measured(cls, rows: list[dict], out_channels: int) -> Landscape:
        found: dict[str, list[float]] = defaultdict(list)
        for row in rows:
            found[group_of(filters_of(row["allocation"], out_channels))].append(row["accuracy"])
        if len(found) < len(GROUPS) or min(len(v) for v in found.values()) < 2:
            raise ValueError(f"too few cached rows in some group of {GROUPS} ({ {g: len(v) for g, v in found.items()} }): "
                             "run sampler_efficiency.py on that kind of CPU first")  # fmt: skip
        return cls({g: statistics.fmean(v) for g, v in found.items()}, {g: statistics.stdev(v) for g, v in found.items()},
                   {g: len(v) for g, v in found.items()})  # fmt: skip

    def describe(self) -> str:
        return "  ".join(f"{g}: {self.mean[g]:.4f} ± {self.spread[g]:.4f} ({self.rows[g]} rows)" for g in GROUPS)


class LandscapeEvaluator:
    """A candidate's score: the landscape's mean at its first-conv count plus ``scale`` x a
    normal draw of that count's spread, seeded by the candidate and the objective."""

    device = "cpu"

    def __init__(self, landscape: Landscape, out_channels: int, tasks: tuple[str, ...], scale: float, objective: int,
                 plateau_at: int = MEASURED_PLATEAU, unit: str = STEM) -> None:  # fmt: skip
        self.landscape, self.out_channels, self.tasks, self.scale, self.objective = landscape, out_channels, tasks, scale, objective
        self.plateau_at, self.unit = plateau_at, unit

    def __call__(self, candidate, *, on_step=None, probe=None) -> TrainResult:  # type: ignore[no-untyped-def]
        group = group_of(filters_of(candidate.allocation_dict, self.out_channels, self.unit), self.plateau_at)
        seed = int.from_bytes(hashlib.sha256(f"{candidate.key}|{self.objective}".encode()).digest()[:8], "big")
        score = self.landscape.mean[group] + self.scale * self.landscape.spread[group] * random.Random(seed).gauss(0.0, 1.0)
        return TrainResult(dict.fromkeys(self.tasks, score), train_seconds=0.0, images_per_second=0.0)


def sampler_for(name: str, settings, seed: int) -> optuna.samplers.BaseSampler:  # type: ignore[no-untyped-def]
    """A sampler of the package (``make_sampler``), or the package's TPE with options after
    ``+``: ``startupN`` (N random proposals after the baselines before its model takes over),
    ``univariate`` (one Parzen estimator per parameter instead of the joint one)."""
    base, *options = name.split("+")
    if not options:
        return make_sampler(dataclasses.replace(settings, sampler=name, seed=seed))
    if base != "tpe":
        raise ValueError(f"options after + are TPE's, not {base!r}'s: {name!r}")
    extra, multivariate = 0, True
    for option in options:
        if option.startswith("startup") and option.removeprefix("startup").isdigit():
            extra = int(option.removeprefix("startup"))
        elif option == "univariate":
            multivariate = False
        else:
            raise ValueError(f"unknown TPE option {option!r} in {name!r}: use startupN or univariate")
    return optuna.samplers.TPESampler(seed=seed, multivariate=multivariate, n_startup_trials=len(BASELINES) + extra, constant_liar=True)


def run(job: tuple) -> dict:  # type: ignore[type-arg]
    preset, fidelity, landscape, sampler, seed, scale, objective, n_trials, plateau_at, unit = job
    torch.set_num_threads(1)  # the GP sampler's fits run on torch: one thread a process
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = with_fidelity(embedded(preset, sampler=sampler.split("+")[0]), fidelity)
    out_channels = unit_width(settings, unit)
    evaluator = LandscapeEvaluator(landscape, out_channels, settings.tasks, scale, objective, plateau_at, unit)
    with tempfile.TemporaryDirectory() as tmp:
        study = mtlsearch.create_study(settings, storage=f"sqlite:///{tmp}/s.db", study_name=f"{sampler}-{seed}", n_trials=n_trials).study
        study.sampler = sampler_for(sampler, settings, seed)
        stalled = None
        try:
            mtlsearch.run_worker(study, settings, evaluator, n_trials=n_trials)
        except SearchStalledError as exc:
            stalled = str(exc)
        volumes = hypervolume_info(study, mtlsearch.trials_frame(study), settings).hypervolume
        records = mtlsearch.records(study.get_trials(deepcopy=False))
    searched = [r for r in records if r.kind == "trained" and r.strategy == "search"]
    best = max(searched, key=lambda r: r.accuracy or 0.0)
    plateau = sum(group_of(filters_of(r.allocation, out_channels, unit), plateau_at) == GROUPS[-1] for r in searched)
    return {"sampler": sampler, "seed": seed, "scale": scale, "objective": objective, "hypervolume": volumes, "stalled": stalled,
            "reused": sum(r.kind == "reused" for r in records), "best_k": filters_of(best.allocation, out_channels, unit),
            "plateau": plateau, "searched": len(searched)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--fidelity", default="10x250", help="EPOCHSxIMAGES of the measured rows (and of the runs' settings)")
    parser.add_argument("--kind", help="the CPU kind whose rows draw the landscape (default: the one with the most rows there)")
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random"],
                        help="the first is judged against random; tpe+startupN, tpe+univariate: the package's TPE with N random "
                        "proposals after the baselines, or with one estimator per parameter")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampler seeds, one run each per objective")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 1.0], help="noise, as a multiple of the rows' spread")
    parser.add_argument("--objectives", type=int, default=5, help="draws of the noise per scale")
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--plateau-at", type=int, default=MEASURED_PLATEAU, metavar="K",
                        help="a landscape not measured: the measured plateau's score from K filters of the first conv on, the "
                        "measured middle group's below (3: as measured)")
    parser.add_argument("--decisive", default=STEM, metavar="UNIT",
                        help="a landscape not measured: the groups' scores by UNIT's task-specific filters instead of the first conv's")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--cache", default=str(RESULTS / "trained.jsonl"))
    args = parser.parse_args()
    if "random" not in args.samplers:
        parser.error("--samplers must include random: the first sampler is judged against it")
    settings = with_fidelity(embedded(args.preset), args.fidelity)
    for name in args.samplers:  # a bad name stops here, not in a pool's worker
        try:
            sampler_for(name, settings, 0)
        except ValueError as exc:
            parser.error(str(exc))
    by_kind = Cache(Path(args.cache)).by_kind(data_id(settings), args.fidelity, 0)  # seed 0: the real sampler runs' training seed
    kind = args.kind or max(by_kind, key=lambda k: len(by_kind[k]), default="")
    if kind not in by_kind:
        parser.error(f"no cached rows of {data_id(settings)} at {args.fidelity} with seed 0 on {kind!r}; kinds that have some: {sorted(by_kind)}")
    try:
        landscape = Landscape.measured(by_kind[kind], unit_width(settings))
    except ValueError as exc:
        parser.error(f"{kind}: {exc}")
    fid = args.fidelity
    print(f"{args.preset} at {fid}, landscape from {sum(landscape.rows.values())} rows of {kind} (training seed 0):")
    print(f"  first-conv filters task-specific: {landscape.describe()}")
    try:
        width = unit_width(settings, args.decisive)
    except ValueError as exc:
        parser.error(str(exc))
    if not 1 <= args.plateau_at <= width:
        parser.error(f"--plateau-at {args.plateau_at}: {args.decisive} has {width} filters; pass 1 to {width}")
    if args.plateau_at != MEASURED_PLATEAU or args.decisive != STEM:
        print(f"  NOT MEASURED: the plateau moved to {args.plateau_at} or more filters of {args.decisive} (the measured one: {MEASURED_PLATEAU} of {STEM})")
    jobs = [(args.preset, fid, landscape, s, seed, scale, obj, args.n_trials, args.plateau_at, args.decisive)
            for scale in args.scales for obj in range(args.objectives) for s in args.samplers for seed in args.seeds]  # fmt: skip
    from multiprocessing import get_context

    with get_context("spawn").Pool(args.processes) as pool:
        results = list(pool.imap_unordered(run, jobs))
    first = args.samplers[0]
    met: dict[str, dict[float, int]] = {}
    for scale in args.scales:
        at = [r for r in results if r["scale"] == scale]
        print(f"scale {scale:g}: noise std " + ", ".join(f"{scale * landscape.spread[g]:.4f} ({g})" for g in GROUPS))
        for s in args.samplers:
            mine = [r for r in at if r["sampler"] == s]
            marks = "  ".join(f"@{n} {statistics.fmean(r['hypervolume'][min(n, len(r['hypervolume'])) - 1] for r in mine):.4f}" for n in (10, 20, 30, 40) if n <= args.n_trials)
            ks = sorted(r["best_k"] for r in mine)
            plateau = statistics.fmean(r["plateau"] for r in mine)
            print(f"  {s:<7} hypervolume {marks}   best's filters of {args.decisive} {ks}; of {statistics.fmean(r['searched'] for r in mine):.0f} searched "
                  f"candidates trained, {plateau:.1f} hold {args.plateau_at} or more of {args.decisive}; reused {statistics.fmean(r['reused'] for r in mine):.0f} a run")  # fmt: skip
        for s in [s for s in args.samplers if s != "random"]:
            slowest = []
            for obj in range(args.objectives):
                runs = [r for r in at if r["objective"] == obj]
                target = statistics.fmean(r["hypervolume"][-1] for r in runs if r["sampler"] == "random")
                slowest.append(worst(reach(r["hypervolume"], target) for r in runs if r["sampler"] == s))
            within = sum(n <= 20 for n in slowest)
            met.setdefault(s, {})[scale] = within
            print(f"  {s} reaches random's {args.n_trials}-trial mean within 20 trials in every run on {within} of {args.objectives} objectives; "
                  f"its worst run per objective: {[n if n != float('inf') else 'never' for n in slowest]}")  # fmt: skip
    nearest = min(args.scales, key=lambda s: abs(s - 1.0))
    print(f"met_at_scale1={met[first][nearest]}/{args.objectives}" if first in met else "met_at_scale1=nan (the first sampler is random)")


if __name__ == "__main__":
    main()
