"""The embedded benchmark ``fashion-domains``: four Fashion-MNIST domains, offline."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from mtlsearch.datasets._task import SPLITS, Split, Task, shuffled
from mtlsearch.errors import DatasetError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

EMBEDDED = "fashion-domains"
DOMAINS = ("grayscale", "negative-tint", "sketch", "striped")


def _archive() -> Traversable:
    path = resources.files("mtlsearch.datasets").joinpath("fashion_domains.npz")
    if not path.is_file():
        raise DatasetError(
            "the embedded benchmark file is missing from the package: reinstall mtlsearch, or "
            "rebuild it with 'python -m mtlsearch.datasets.build_fashion_domains'"
        )
    return path


def fashion_domains_classes() -> list[tuple[str, ...]]:
    """The class names of every task, without decompressing a single image."""
    with _archive().open("rb") as fh, np.load(fh) as archive:
        return [tuple(str(c) for c in archive[f"{domain}.classes"]) for domain in DOMAINS]


def load_fashion_domains() -> list[Task]:
    """The four tasks of ``fashion-domains`` as 3-channel 28 px images."""
    with _archive().open("rb") as fh, np.load(fh) as archive:
        tasks = []
        for domain in DOMAINS:
            splits = {}
            for split in SPLITS:
                images = archive[f"{domain}.{split}.images"]
                if images.shape[1] == 1:
                    images = np.repeat(images, 3, axis=1)
                splits[split] = Split(images, archive[f"{domain}.{split}.labels"])
            tasks.append(
                Task(
                    name=domain,
                    classes=tuple(str(c) for c in archive[f"{domain}.classes"]),
                    train=shuffled(splits["train"]),
                    val=splits["val"],
                    test=splits["test"],
                )
            )
    return tasks
