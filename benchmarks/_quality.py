"""Shared by the search-quality benchmarks: candidates trained in this process, results kept.

Every result is appended to a JSON-lines file under ``benchmarks/results/`` keyed by the
allocation (its filter counts), the fidelity and the seed, so a rerun (or another script)
reuses what was already trained instead of training it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch

from mtlsearch._settings import Settings, resolve_settings
from mtlsearch._train import Fidelity, train_candidate
from mtlsearch.datasets import load_tasks
from mtlsearch.models import Candidate, backbone_spec, build_model

RESULTS = Path(__file__).parent / "results"


def fidelity_name(f: Fidelity) -> str:
    return f"{f.epochs}x{f.train_size}"


def with_fidelity(settings: Settings, spec: str) -> Settings:
    """``spec`` is ``EPOCHSxTRAIN_SIZE``, e.g. ``5x1000`` (the embedded default)."""
    epochs, size = (int(v) for v in spec.split("x"))
    return replace(settings, fidelity=replace(settings.fidelity, epochs=epochs, train_size=size))


class Cache:
    """``(candidate key, fidelity, seed) -> result`` on disk, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[str, str, int], dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                self.rows[(row["key"], row["fidelity"], row["seed"])] = row

    def get(self, key: str, fidelity: str, seed: int) -> dict | None:
        return self.rows.get((key, fidelity, seed))

    def put(self, row: dict) -> None:
        self.rows[(row["key"], row["fidelity"], row["seed"])] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


_TASKS: dict[tuple[str, int, int], list] = {}


def tasks_for(settings: Settings) -> list:
    key = (settings.dataset, settings.image_size, settings.fidelity.train_size)
    if key not in _TASKS:
        _TASKS[key] = load_tasks(settings.dataset, image_size=settings.image_size, train_size=settings.fidelity.train_size)
    return _TASKS[key]


def candidate(settings: Settings, allocation: Mapping[str, float], strategy: str = "search") -> Candidate:
    tasks = tasks_for(settings)
    return Candidate.create(backbone_spec(settings.backbone), [t.num_classes for t in tasks], allocation, settings.granularity, strategy=strategy)  # type: ignore[arg-type]


def train(settings: Settings, allocation: Mapping[str, float], seed: int, cache: Cache, *, label: str = "") -> dict:
    """Mean and per-task val accuracy of one allocation at ``settings.fidelity`` and ``seed``:
    the worker's own recipe (same init seed, same training loop)."""
    cand = candidate(settings, allocation)
    fid = fidelity_name(settings.fidelity)
    found = cache.get(cand.key, fid, seed)
    if found is not None:
        return found
    tasks = tasks_for(settings)
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model(settings.backbone, num_classes=[t.num_classes for t in tasks], allocation=dict(allocation), granularity=settings.granularity)  # type: ignore[arg-type]
    result = train_candidate(model, tasks, settings.fidelity, device="cpu", seed=seed)
    row = {
        "key": cand.key, "fidelity": fid, "seed": seed, "label": label, "accuracy": result.accuracy,
        "task_accuracy": result.task_accuracy, "params": cand.counts.total, "specific_fraction": cand.specific_fraction,
        "seconds": time.perf_counter() - started, "allocation": dict(allocation),
    }  # fmt: skip
    cache.put(row)
    return row


def embedded(**overrides: object) -> Settings:
    return resolve_settings("embedded", **overrides)
