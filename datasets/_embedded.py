"""The embedded benchmark ``fashion-domains``: four Fashion-MNIST domains, offline."""

from __future__ import annotations

from importlib import resources

import numpy as np

from mtlsearch.datasets._task import SPLITS, Split, Task, shuffled
from mtlsearch.errors import DatasetError

EMBEDDED = "fashion-domains"
DOMAINS = ("grayscale", "negative-tint", "sketch", "striped")


def load_fashion_domains() -> list[Task]:
    """The four tasks of ``fashion-domains`` as 3-channel 28 px images."""
    path = resources.files("mtlsearch.datasets").joinpath("fashion_domains.npz")
    if not path.is_file():
        raise DatasetError(
            "the embedded benchmark file is missing from the package: reinstall mtlsearch, or "
            "rebuild it with 'python -m mtlsearch.datasets.build_fashion_domains'"
        )
    with path.open("rb") as fh, np.load(fh) as archive:
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
