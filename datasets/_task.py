"""The task abstraction: one domain with its own classes and train / val / test splits."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Images as ``uint8`` ``[N, 3, H, W]`` and labels as ``int64`` ``[N]``."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> Split:
        return Split(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class Task:
    """A domain: its name, class names and deterministic splits (train is pre-shuffled)."""

    name: str
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> Split:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def with_train_size(self, n: int | None) -> Task:
        """The same task with at most ``n`` training images (the first ``n``, always the same)."""
        return self if n is None else replace(self, train=self.train.head(n))

    def with_val_size(self, n: int | None) -> Task:
        """The same task scored on at most ``n`` validation images: a fixed random subset, the
        same on every machine and for every candidate (validation files are often in class order)."""
        return self if n is None or n >= len(self.val) else replace(self, val=shuffled(self.val).head(n))


def carve(labels: np.ndarray, fraction: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split of indices into (kept, carved): ``fraction`` per class."""
    rng = np.random.default_rng(seed)
    kept, carved = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        idx = idx[rng.permutation(len(idx))]
        n = int(round(len(idx) * fraction)) if len(idx) > 1 else 0
        carved.append(idx[:n])
        kept.append(idx[n:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(carved))


def shuffled(split: Split, *, seed: int = 0) -> Split:
    """A fixed permutation, so that ``head(n)`` is a random but repeatable subset."""
    order = np.random.default_rng(seed).permutation(len(split))
    return Split(split.images[order], split.labels[order])
