"""Tasks (domains), the embedded benchmark and image-folder readers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtlsearch.datasets._embedded import (
    DOMAINS,
    EMBEDDED,
    EMBEDDED_BENCHMARKS,
    EmbeddedBenchmark,
    embedded_classes,
    embedded_digest,
    load_embedded,
    load_fashion_domains,
    tasks_of,
)
from mtlsearch.datasets._folder import LAYOUT, FolderTask, Progress, decode_tasks, load_folder, scan_folder
from mtlsearch.datasets._official import DECATHLON_TASKS, FGC_READERS, scan_decathlon, scan_fgc
from mtlsearch.datasets._task import SPLITS, Split, Task, carve, shuffled
from mtlsearch.datasets._transforms import TrainAugment, eval_transform
from mtlsearch.errors import DatasetError

__all__ = [
    "DOMAINS",
    "EMBEDDED",
    "EMBEDDED_BENCHMARKS",
    "EmbeddedBenchmark",
    "LAYOUT",
    "SPLITS",
    "FolderTask",
    "Split",
    "Task",
    "TrainAugment",
    "DECATHLON_TASKS",
    "FGC_READERS",
    "OFFICIAL",
    "carve",
    "decode_tasks",
    "describe_tasks",
    "embedded_classes",
    "embedded_digest",
    "eval_transform",
    "load_embedded",
    "load_fashion_domains",
    "load_folder",
    "load_tasks",
    "resize_tasks",
    "scan_decathlon",
    "scan_fgc",
    "tasks_of",
    "scan_folder",
    "shuffled",
]


def resize_tasks(tasks: Sequence[Task], image_size: int) -> list[Task]:
    """The same tasks with every image resized (bilinear) to ``image_size`` px."""
    import torch
    import torch.nn.functional as F

    def resize(split: Split) -> Split:
        if split.images.shape[-1] == image_size:
            return split
        x = torch.from_numpy(split.images).float()
        y = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True)
        return Split(y.round().clamp(0, 255).to(torch.uint8).numpy(), split.labels)

    return [Task(t.name, t.classes, resize(t.train), resize(t.val), resize(t.test)) for t in tasks]


OFFICIAL = ("fgc", "decathlon")  # datasets read from their official files under --data-root


def _scan_official(dataset: str, data_root: Path | None) -> list[FolderTask]:
    if data_root is None:
        raise DatasetError(f"dataset {dataset!r} needs --data-root DIR holding its official files (see docs/reproduction.md)")
    return scan_fgc(data_root) if dataset == "fgc" else scan_decathlon(data_root)


def describe_tasks(dataset: str, *, data_root: Path | None = None) -> list[tuple[str, int]]:
    """``(name, number of classes)`` of every task, decoding no image of an image folder."""
    if dataset in EMBEDDED_BENCHMARKS:
        return [(name, len(classes)) for name, classes in zip(EMBEDDED_BENCHMARKS[dataset].domains, embedded_classes(dataset))]
    if dataset == "folder":
        if data_root is None:
            raise DatasetError(f"dataset 'folder' needs --data-root DIR laid out as {LAYOUT}")
        return [(t.name, len(t.classes)) for t in scan_folder(data_root)]
    if dataset in OFFICIAL:
        return [(t.name, len(t.classes)) for t in _scan_official(dataset, data_root)]
    raise DatasetError(_unknown(dataset))


def _unknown(dataset: str) -> str:
    return f"unknown dataset {dataset!r}: use {', '.join(map(repr, EMBEDDED_BENCHMARKS))}, 'folder', 'fgc' or 'decathlon'"


def load_tasks(
    dataset: str,
    *,
    image_size: int,
    data_root: Path | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
    progress: Progress | None = None,
    crop_pct: float = 1.0,
) -> list[Task]:
    """The tasks of a study: an embedded benchmark, ``folder``, ``fgc`` or ``decathlon`` (the
    last three need ``data_root``)."""
    if dataset in EMBEDDED_BENCHMARKS:
        tasks = resize_tasks(load_embedded(dataset), image_size)
    elif dataset == "folder":
        if data_root is None:
            raise DatasetError(f"dataset 'folder' needs --data-root DIR laid out as {LAYOUT}")
        tasks = load_folder(data_root, image_size=image_size, progress=progress, crop_pct=crop_pct)
    elif dataset in OFFICIAL:
        tasks = decode_tasks(_scan_official(dataset, data_root), image_size=image_size, progress=progress, crop_pct=crop_pct)
    else:
        raise DatasetError(_unknown(dataset))
    for task in tasks:
        if len(np.unique(task.train.labels)) < 2:
            raise DatasetError(f"task {task.name!r} has fewer than two classes with training images")
    return [t.with_train_size(train_size).with_val_size(val_size) for t in tasks]
