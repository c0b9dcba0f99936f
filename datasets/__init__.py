"""Tasks (domains), the embedded benchmark and image-folder readers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtlsearch.datasets._embedded import DOMAINS, EMBEDDED, fashion_domains_classes, load_fashion_domains
from mtlsearch.datasets._folder import LAYOUT, FolderTask, Progress, decode_tasks, load_folder, scan_folder
from mtlsearch.datasets._official import DECATHLON_TASKS, FGC_READERS, scan_decathlon, scan_fgc
from mtlsearch.datasets._task import SPLITS, Split, Task, carve, shuffled
from mtlsearch.errors import DatasetError

__all__ = [
    "DOMAINS",
    "EMBEDDED",
    "LAYOUT",
    "SPLITS",
    "FolderTask",
    "Split",
    "Task",
    "DECATHLON_TASKS",
    "FGC_READERS",
    "OFFICIAL",
    "carve",
    "decode_tasks",
    "describe_tasks",
    "load_fashion_domains",
    "load_folder",
    "load_tasks",
    "resize_tasks",
    "scan_decathlon",
    "scan_fgc",
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
    if dataset == EMBEDDED:
        return [(name, len(classes)) for name, classes in zip(DOMAINS, fashion_domains_classes())]
    if dataset == "folder":
        if data_root is None:
            raise DatasetError(f"dataset 'folder' needs --data-root DIR laid out as {LAYOUT}")
        return [(t.name, len(t.classes)) for t in scan_folder(data_root)]
    if dataset in OFFICIAL:
        return [(t.name, len(t.classes)) for t in _scan_official(dataset, data_root)]
    raise DatasetError(f"unknown dataset {dataset!r}: use {EMBEDDED!r}, 'folder', 'fgc' or 'decathlon'")


def load_tasks(
    dataset: str,
    *,
    image_size: int,
    data_root: Path | None = None,
    train_size: int | None = None,
    progress: Progress | None = None,
) -> list[Task]:
    """The tasks of a study: ``fashion-domains`` or ``folder`` (needs ``data_root``)."""
    if dataset == EMBEDDED:
        tasks = resize_tasks(load_fashion_domains(), image_size)
    elif dataset == "folder":
        if data_root is None:
            raise DatasetError(f"dataset 'folder' needs --data-root DIR laid out as {LAYOUT}")
        tasks = load_folder(data_root, image_size=image_size, progress=progress)
    elif dataset in OFFICIAL:
        tasks = decode_tasks(_scan_official(dataset, data_root), image_size=image_size, progress=progress)
    else:
        raise DatasetError(f"unknown dataset {dataset!r}: use {EMBEDDED!r}, 'folder', 'fgc' or 'decathlon'")
    for task in tasks:
        if len(np.unique(task.train.labels)) < 2:
            raise DatasetError(f"task {task.name!r} has fewer than two classes with training images")
    return [t.with_train_size(train_size) for t in tasks]
