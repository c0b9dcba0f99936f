"""Shared by the search-quality benchmarks: candidates trained here, results kept.

Every result is appended to a JSON-lines file under ``benchmarks/results/`` keyed by the data
(``data_id``: an embedded benchmark's name and the digest of its file, so a rebuilt file never
reuses results of another), the allocation (its filter counts), the fidelity and the seed, so a
rerun (or another script) reuses what was already trained instead of training it again. Rows
from before the data was part of the key are ``fashion-domains`` ones (then the embedded
default, whose file has not changed since).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch

import mtlsearch
from mtlsearch import Fidelity, Settings
from mtlsearch.datasets import load_tasks
from mtlsearch.models import Candidate, backbone_spec, strategy_allocation

RESULTS = Path(__file__).parent / "results"


# recipe fields a fidelity's name shows when they differ from the Fidelity defaults every cached
# row was trained with (``25x250+lr0.05``); the name keys the results cache
_RECIPE = {"lr": float, "val_size": int, "head_warmup_epochs": int}  # field -> its type


def fidelity_name(f: Fidelity) -> str:
    """``EPOCHSxIMAGES``, then ``+<field><value>`` for every recipe field off its default."""
    default = Fidelity()
    return f"{f.epochs}x{f.train_size}" + "".join(f"+{k}{getattr(f, k):g}" for k in _RECIPE if getattr(f, k) != getattr(default, k))


def with_fidelity(settings: Settings, spec: str) -> Settings:
    """``spec`` is ``EPOCHSxTRAIN_SIZE``, e.g. ``25x250``, optionally with recipe fields
    (``25x250+lr0.05``, ``25x250+val_size500``); fields left out keep the preset's value."""
    import re

    size, *fields = spec.split("+")
    epochs, train = (int(v) for v in size.split("x"))
    changes: dict[str, object] = {"epochs": epochs, "train_size": train}
    for part in fields:
        match = re.fullmatch(r"([a-z_]+)([0-9.e-]+)", part)
        if not match or match[1] not in _RECIPE:
            raise SystemExit(f"fidelity {spec!r}: {part!r} is not one of {list(_RECIPE)} followed by a number")
        changes[match[1]] = _RECIPE[match[1]](match[2])
    return replace(settings, fidelity=replace(settings.fidelity, **changes))


OLD_DATASET = "fashion-domains"  # rows written before the key held the data
EXECUTION = "stacked"  # pinned: a rerun on the same kind of CPU repeats bit for bit
UNRECORDED = "unrecorded"  # the CPU kind of rows written before rows recorded it


class Cache:
    """``(dataset, candidate key, fidelity, seed) -> result`` on disk, one JSON object per line;
    the latest row of a key wins. Only rows trained on this machine's kind of CPU are found:
    every comparison is paired by seed, and on another instruction set the same seed is another
    draw of the noise."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[str, str, str, int, str], dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                self._keep(json.loads(line))

    def _keep(self, row: dict) -> None:
        self.rows[(_data_of(row), row["key"], row["fidelity"], row["seed"], kind_of(row))] = row

    def get(self, key: str, fidelity: str, seed: int, data: str, kind: str | None = None) -> dict | None:
        """The row this kind of CPU (or ``kind``) trained."""
        return self.rows.get((data, key, fidelity, seed, kind or cpu_kind()))

    def by_kind(self, data: str, fidelity: str, seed: int) -> dict[str, list[dict]]:
        """Every row of ``data`` at ``fidelity`` and ``seed``, whatever its candidate, per kind of CPU."""
        found: dict[str, list[dict]] = {}
        for (row_data, _, row_fidelity, row_seed, kind), row in self.rows.items():
            if (row_data, row_fidelity, row_seed) == (data, fidelity, seed):
                found.setdefault(kind, []).append(row)
        return found

    @property
    def kinds(self) -> list[str]:
        """Every kind of CPU that has rows here."""
        return sorted({k[-1] for k in self.rows})

    def put(self, row: dict) -> None:
        self._keep(row)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def data_id(settings: Settings) -> str:
    """What the results of ``settings`` were trained on: an embedded benchmark's name with the
    digest of its file, else the dataset's name and its root; then ``start_of(settings)``."""
    return _data_id(settings.dataset, settings.data_root) + start_of(settings)


def start_of(settings: Settings) -> str:
    """What a data id adds for candidates that start from a checkpoint, not at random:
    ``|weights=<its sha256, 12 digits>``, so that the two starts are never paired."""
    return f"|weights={settings.weights_sha256[:12]}" if settings.weights_sha256 else ""


def benchmark_name(settings: Settings) -> str:
    """The benchmark as kept summaries and runs name it: the dataset, and the checkpoint its
    candidates start from (``fashion-mux-weights-73f705f0bd37``), so that runs of the two starts
    are never read as one another's."""
    return settings.dataset + (f"-weights-{settings.weights_sha256[:12]}" if settings.weights_sha256 else "")


def from_checkpoint(settings: Settings, path: str | Path) -> Settings:
    """``settings`` with every candidate starting from the checkpoint at ``path``
    (``pretrain_backbone.py``), its digest kept as a study keeps it."""
    from mtlsearch._settings import _checkpoint

    where, digest = _checkpoint(Path(path))
    return replace(settings, weights=where, weights_sha256=digest)


@functools.cache
def _data_id(dataset: str, data_root: str | None) -> str:
    from mtlsearch.datasets import EMBEDDED_BENCHMARKS, embedded_digest

    if dataset in EMBEDDED_BENCHMARKS:
        return f"{dataset}@{embedded_digest(dataset)}"
    return f"{dataset}:{data_root}"


def _data_of(row: dict) -> str:
    if "data" in row:
        return row["data"]
    return _data_id(OLD_DATASET, None) if row.get("dataset", OLD_DATASET) == OLD_DATASET else row["dataset"]


_TASKS: dict[tuple[str, int, int], list] = {}


def tasks_for(settings: Settings) -> list:
    f = settings.fidelity
    key = (settings.dataset, settings.image_size, f.train_size, f.val_size)
    if key not in _TASKS:  # the tasks a worker of this study would load
        _TASKS[key] = load_tasks(settings.dataset, image_size=settings.image_size, train_size=f.train_size, val_size=f.val_size)
    return _TASKS[key]


def candidate(settings: Settings, allocation: Mapping[str, float], strategy: str = "search", *, tasks: list | None = None) -> Candidate:
    tasks = tasks_for(settings) if tasks is None else tasks
    return Candidate.create(backbone_spec(settings.backbone), [t.num_classes for t in tasks], allocation, settings.granularity, strategy=strategy)  # type: ignore[arg-type]


def _train_row(settings: Settings, allocation: Mapping[str, float], seed: int, label: str, *, tasks: list | None = None, data: str | None = None) -> dict:
    """The worker's own recipe (same init seed, same training loop), timed; on the preset's
    tasks, or on ``tasks`` recorded as ``data`` (a benchmark built in memory)."""
    return _trained(settings, allocation, seed, label, tasks=tasks, data=data)[0]


def _trained(settings: Settings, allocation: Mapping[str, float], seed: int, label: str, *, tasks: list | None = None, data: str | None = None) -> tuple[dict, object]:
    """``_train_row``'s row and the trained model. ``tasks`` built in memory are cut to the
    fidelity's images, as a worker loads them: a row's fidelity names what it was trained on."""
    f = settings.fidelity
    tasks = tasks_for(settings) if tasks is None else [t.with_train_size(f.train_size).with_val_size(f.val_size) for t in tasks]
    cand = candidate(settings, allocation, tasks=tasks)
    started = time.perf_counter()
    model, result = mtlsearch.train_allocation(dict(allocation), settings, tasks, device="cpu", seed=seed, execution=EXECUTION)
    return {
        "dataset": settings.dataset, "data": data or data_id(settings), "key": cand.key, "fidelity": fidelity_name(settings.fidelity), "seed": seed, "label": label,
        "accuracy": result.accuracy, "task_accuracy": result.task_accuracy, "params": cand.counts.total,
        "specific_fraction": cand.specific_fraction, "seconds": time.perf_counter() - started,
        "train_seconds": result.train_seconds, "allocation": dict(allocation), "cpu": cpu_kind(),
    }, model  # fmt: skip


@functools.cache
def cpu_kind() -> str:
    """The instruction set torch's kernels use here and the CPU's vendor: the same seed, trained
    with one torch thread, repeats bit for bit on the same kind and differs by about a seed's
    noise on another (float sums in another order). The vendor counts: MKL and oneDNN take other
    code paths on AMD than on Intel at the same instruction set (rows recorded as plain
    ``x86_64 AVX512``, before the vendor was part of the kind, came from another vendor than
    ``AuthenticAMD``: docs/benchmarks.md)."""
    import platform

    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()} {_vendor()}"


@functools.cache
def _vendor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("vendor_id", "CPU implementer")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown-vendor"


def kind_slug() -> str:
    """``cpu_kind()`` for a file name: the summaries a script writes are per kind of CPU, as the
    rows behind them are."""
    return cpu_kind().replace(" ", "-")


def run_file(dataset: str, name: str, fidelity: str, seed: int, kind: str | None = None) -> Path:
    """Where ``sampler_efficiency.py`` keeps a run of this kind of CPU (or of ``kind``): a run of
    another kind is another draw of the objective, kept beside it, not overwritten."""
    return RESULTS / "runs" / f"{dataset}-{name}-{fidelity}-seed{seed}-{(kind or cpu_kind()).replace(' ', '-')}.json"


def run_trials(study) -> list[dict]:  # type: ignore[no-untyped-def]
    """A study's trained trials (and those the early-stopping rule stopped) as a kept run holds them."""
    return [{"number": r.number, "kind": r.kind, "accuracy": r.accuracy, "params": r.params, "strategy": r.strategy,
             "specific_fraction": r.specific_fraction, "probe": r.probe_accuracy, "allocation": dict(r.allocation)}
            for r in mtlsearch.records(study.get_trials(deepcopy=False)) if r.kind in ("trained", "stopped")]  # fmt: skip


def kept_run(dataset: str, name: str, fidelity: str, seed: int, kind: str | None = None) -> dict | None:
    """The run of this kind of CPU (or of ``kind``), else the one kept before runs were named by
    their kind (whatever kind it records), else None."""
    for path in (run_file(dataset, name, fidelity, seed, kind), RESULTS / "runs" / f"{dataset}-{name}-{fidelity}-seed{seed}.json"):
        if path.exists():
            return json.loads(path.read_text())
    return None


# Rows recorded before the kind named the vendor, read as the kind they were trained on: on an
# Intel Xeon with AVX-512 (2026-12-04) one torch thread repeated such rows to the bit
# (docs/search-quality.md, section 2a)
LEGACY_KINDS = {"x86_64 AVX512": "x86_64 AVX512 GenuineIntel"}


def kind_of(recorded: dict) -> str:
    """The CPU kind a cached row or a kept run was trained on."""
    kind = recorded.get("cpu", UNRECORDED)
    return LEGACY_KINDS.get(kind, kind)


def _job_data(settings: Settings, variant: str | None) -> str | None:
    """The data id a job's row is kept under when it is trained on a variant built in memory."""
    return built(variant)[1] + start_of(settings) if variant else None


def _cached(settings: Settings, allocation: Mapping[str, float], seed: int, cache: Cache, data: str | None = None, kind: str | None = None) -> dict | None:
    return cache.get(candidate(settings, allocation).key, fidelity_name(settings.fidelity), seed, data or data_id(settings), kind)


RAW = "/usr/share/datasets/fashion-mnist"  # Fashion-MNIST's gzipped IDX files, for benchmarks built in memory


def built(variant: str) -> tuple[list, str]:
    """The tasks and data id of a fashion-mux variant built in memory (``mux_variants.VARIANTS``)."""
    from mux_variants import variant as build_variant

    return build_variant(variant, RAW)


def train(settings: Settings, allocation: Mapping[str, float], seed: int, cache: Cache, *, label: str = "") -> dict:
    """Mean and per-task val accuracy of one allocation at ``settings.fidelity`` and ``seed``."""
    found = _cached(settings, allocation, seed, cache)
    if found is None:
        found = _train_row(settings, allocation, seed, label)
        cache.put(found)
    return found


Job = tuple[Settings, Mapping[str, float], int, str]  # settings, allocation, seed, label


def _pool_job(job: tuple[Job, str | None]) -> dict:
    torch.set_num_threads(1)
    (settings, allocation, seed, label), variant = job
    if variant is None:
        return _train_row(settings, allocation, seed, label)
    return _train_row(settings, allocation, seed, label, tasks=built(variant)[0], data=_job_data(settings, variant)) | {"variant": variant}


def print_trained(row: dict) -> None:
    """One line for each row ``train_many`` trains (its ``on_row``): long runs show their work."""
    print(f"  trained {row['label']:<26} {row['fidelity']:>8} seed {row['seed']}: {row['accuracy']:.4f}  "
          f"specific {row['specific_fraction']:.4f}  {row['seconds']:.1f} s", flush=True)  # fmt: skip


def train_many(jobs: list[Job], cache: Cache, *, processes: int = 2, on_row=None, variant: str | None = None) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every job's row, training the ones not in ``cache`` in ``processes`` processes of one
    torch thread each (the 2-core machine: one per core); the parent alone writes the cache.
    With ``variant``, on that fashion-mux variant built in memory instead of the preset's data."""
    missing = [job for job in jobs if _cached(job[0], job[1], job[2], cache, _job_data(job[0], variant)) is None]
    keyed = {(_job_data(job[0], variant) or data_id(job[0]), candidate(job[0], job[1]).key, fidelity_name(job[0].fidelity), job[2]): job for job in missing}
    missing = list(keyed.values())  # one training per candidate, fidelity and seed
    if processes <= 1:
        for job in missing:
            row = _pool_job((job, variant))  # one torch thread, as in the pool: another thread count is another draw of the noise
            cache.put(row)
            if on_row is not None:
                on_row(row)
    elif missing:
        from multiprocessing import get_context

        with get_context("spawn").Pool(processes) as pool:
            for row in pool.imap_unordered(_pool_job, [(job, variant) for job in missing]):
                cache.put(row)
                if on_row is not None:
                    on_row(row)
    return [_cached(s, a, seed, cache, _job_data(s, variant)) for s, a, seed, _ in jobs]  # type: ignore[misc]


def embedded(preset: str = "embedded", **overrides: object) -> Settings:
    """A preset's settings (the embedded default unless named) with the tasks filled in."""
    return mtlsearch.study_settings(preset, **overrides)


def add_candidate_options(parser: argparse.ArgumentParser) -> None:
    """The options of a script that times one candidate of a preset on the CPU."""
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--strategy", default="bottom-specific")
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")


def cpu_candidate(args: argparse.Namespace, *, epochs: int) -> tuple[Settings, list, torch.nn.Module, object]:
    """The settings, tasks, model and training result of ``args.strategy`` on ``args.preset``,
    trained ``epochs`` epochs on the CPU with ``args.threads`` torch threads
    (``add_candidate_options``); ``epochs=0`` builds it as every candidate starts."""
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = embedded(args.preset)
    tasks = tasks_for(settings)
    allocation = strategy_allocation(args.strategy, backbone_spec(settings.backbone), settings.granularity, args.budget)
    model, result = mtlsearch.train_allocation(allocation, settings, tasks, device="cpu", epochs=epochs)
    return settings, tasks, model, result
