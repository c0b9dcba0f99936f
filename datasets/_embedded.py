"""The embedded benchmarks, shipped inside the package and read offline.

- ``fashion-mux`` (the default): eight Fashion-MNIST domains where *where* the task-specific
  filters go decides the accuracy (``build_fashion_mux``).
- ``fashion-domains`` (the control): four Fashion-MNIST domains whose shifts per-task norms
  absorb, where task-specific filters buy nothing measurable (``build_fashion_domains``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from mtlsearch.datasets._mux import render_mux
from mtlsearch.datasets._task import SPLITS, Split, Task, shuffled
from mtlsearch.errors import DatasetError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


@dataclass(frozen=True)
class EmbeddedBenchmark:
    """One benchmark file in the package: its domains in order and the module that builds it."""

    name: str
    file: str
    domains: tuple[str, ...]
    builder: str
    description: str


EMBEDDED_BENCHMARKS = {
    b.name: b
    for b in (
        EmbeddedBenchmark(
            "fashion-mux", "fashion_mux.npz", ("mux-a", "mux-b", "mux-c", "mux-d", "plain-a", "plain-b", "plain-c", "plain-d"),
            "build_fashion_mux", "four colour-multiplexed and four plain Fashion-MNIST domains, 250 training images each",
        ),
        EmbeddedBenchmark(
            "fashion-domains", "fashion_domains.npz", ("grayscale", "negative-tint", "sketch", "striped"), "build_fashion_domains",
            "four Fashion-MNIST domains whose shifts per-task norms absorb (the control)",
        ),
    )
}
EMBEDDED = "fashion-mux"  # the default benchmark
DOMAINS = EMBEDDED_BENCHMARKS[EMBEDDED].domains


def _benchmark(name: str) -> EmbeddedBenchmark:
    try:
        return EMBEDDED_BENCHMARKS[name]
    except KeyError:
        raise DatasetError(f"unknown embedded benchmark {name!r}: use one of {', '.join(EMBEDDED_BENCHMARKS)}") from None


def _archive(benchmark: EmbeddedBenchmark) -> Traversable:
    path = resources.files("mtlsearch.datasets").joinpath(benchmark.file)
    if not path.is_file():
        raise DatasetError(
            f"the embedded benchmark file {benchmark.file} is missing from the package: reinstall mtlsearch, or "
            f"rebuild it with 'python -m mtlsearch.datasets.{benchmark.builder}'"
        )
    return path


@functools.cache
def embedded_digest(name: str = EMBEDDED) -> str:
    """The first 12 hex digits of the SHA-256 of an embedded benchmark's file: which build of it
    this installation ships (a study records it, and refuses a worker whose file differs)."""
    with _archive(_benchmark(name)).open("rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:12]


def embedded_classes(name: str = EMBEDDED) -> list[tuple[str, ...]]:
    """The class names of every task of an embedded benchmark, without decompressing an image."""
    benchmark = _benchmark(name)
    with _archive(benchmark).open("rb") as fh, np.load(fh) as archive:
        return [tuple(str(c) for c in archive[f"{domain}.classes"]) for domain in benchmark.domains]


def _images(archive: Mapping[str, np.ndarray], domain: str, split: str) -> np.ndarray:
    images = archive[f"{domain}.{split}.images"]
    if f"{domain}.mix" in archive:  # a colour-multiplexed domain: rendered here
        return render_mux(images, archive[f"{domain}.{split}.distractors"], archive[f"{domain}.mix"])
    return np.repeat(images, 3, axis=1) if images.shape[1] == 1 else images


def load_embedded(name: str = EMBEDDED) -> list[Task]:
    """The tasks of an embedded benchmark as 3-channel 28 px ``uint8`` images."""
    benchmark = _benchmark(name)
    with _archive(benchmark).open("rb") as fh, np.load(fh) as archive:
        return tasks_of(archive, benchmark.domains)


def tasks_of(archive: Mapping[str, np.ndarray], domains: Sequence[str]) -> list[Task]:
    """The tasks of a benchmark's arrays, keyed as its file keys them (an open ``.npz``, or what
    a builder's ``build`` returns before it is written), multiplexed domains rendered."""
    tasks = []
    for domain in domains:
        splits = {split: Split(_images(archive, domain, split), archive[f"{domain}.{split}.labels"]) for split in SPLITS}
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


def load_fashion_domains() -> list[Task]:
    """The four tasks of the control benchmark ``fashion-domains``."""
    return load_embedded("fashion-domains")
