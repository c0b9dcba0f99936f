"""Build the embedded ``fashion-mux`` benchmark from Fashion-MNIST's raw IDX files.

    python -m mtlsearch.datasets.build_fashion_mux \
        --raw /usr/share/datasets/fashion-mnist --out datasets/fashion_mux.npz

Eight domains, each from its own disjoint Fashion-MNIST images, all labelled with the ten
garment classes:

- ``mux-a`` to ``mux-d``, colour-multiplexed: each image holds three garments (``_mux``): the
  labelled one in a colour-opponent direction at the domain's own angle (0, 45, 90 and 135
  degrees in the chroma plane), a brighter distractor garment in the brightness, and a second
  distractor at right angles to the labelled one. A first convolution shared with the other
  domains reads the brightness (the plain domains teach it to) and cannot hold every domain's
  angle at once, and per-channel norms cannot undo a cross-channel mix: these domains need
  task-specific filters at the input, and the first convolution alone separates their garment.
- ``plain-a`` to ``plain-d``: grey garments, as Fashion-MNIST has them. They share
  every statistic, so they gain from shared early layers and lose accuracy when those are
  split into task-specific copies (each copy sees an eighth of the images, and the shared
  layers above must serve copies that drift apart).

Every domain has 250 training images (a scarce-data setting, where sharing matters), 2,500
validation images and 1,250 test images (Fashion-MNIST's whole test set, shared out). The file stores the grey garments, and for the
multiplexed domains their mixing matrices and distractor indices; ``load_embedded`` renders
the colour images. Rebuilding gives a byte-identical file: fixed seeds, fixed zip timestamps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mtlsearch.datasets._mux import GAINS, mix_matrix
from mtlsearch.datasets.build_fashion_domains import FASHION_CLASSES, read_raw, write_npz

SIZES = {"train": 250, "val": 2500, "test": 1250}
SEED = 20261128
MUX_DOMAINS = ("mux-a", "mux-b", "mux-c", "mux-d")
PLAIN_DOMAINS = ("plain-a", "plain-b", "plain-c", "plain-d")
DOMAINS = MUX_DOMAINS + PLAIN_DOMAINS


def _distractors(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two other images of the same split for every image: distinct from it and each other."""
    first = rng.integers(1, n, size=n)  # an offset in [1, n - 1]
    second = (first - 1 + rng.integers(1, n - 1, size=n)) % (n - 1) + 1  # another one, not first
    index = np.arange(n)
    return np.stack([(index + first) % n, (index + second) % n], axis=1).astype(np.int64)


def domains(mux: int = len(MUX_DOMAINS), plain: int = len(PLAIN_DOMAINS)) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The multiplexed and the plain domains' names of a build with ``mux`` and ``plain`` of
    them (``mux-a``, ``mux-b``, ..., ``plain-a``, ...); the defaults are fashion-mux's."""
    return tuple(f"mux-{chr(97 + i)}" for i in range(mux)), tuple(f"plain-{chr(97 + i)}" for i in range(plain))


def build(
    raw: Path,
    *,
    mux: int = len(MUX_DOMAINS),
    plain: int = len(PLAIN_DOMAINS),
    gains: tuple[float, float, float] = GAINS,
    mux_train: int = SIZES["train"],
) -> dict[str, np.ndarray]:
    """Every array of the benchmark file, keyed ``<domain>.<split>.<images|labels|...>``. The
    defaults build fashion-mux; other ``mux``/``plain`` counts, mixing ``gains`` and training
    images of a multiplexed domain (``mux_train``) build the variants
    ``benchmarks/mux_variants.py`` measures (the multiplexed domains' angles spread evenly over
    the chroma plane's half turn, as fashion-mux's four are)."""
    source = read_raw(raw)
    rng = np.random.default_rng(SEED)
    pools = {name: rng.permutation(len(source[name][1])) for name in ("train", "test")}
    taken = {"train": 0, "test": 0}
    arrays: dict[str, np.ndarray] = {}
    mux_domains, plain_domains = domains(mux, plain)
    count = len(mux_domains) + len(plain_domains)
    train_images = len(mux_domains) * (mux_train + SIZES["val"]) + len(plain_domains) * (SIZES["train"] + SIZES["val"])
    if train_images > len(pools["train"]) or count * SIZES["test"] > len(pools["test"]):
        raise ValueError(
            f"{count} domains with {mux_train} training images a multiplexed domain need {train_images} disjoint training and "
            f"validation images and {count * SIZES['test']} test images, more than Fashion-MNIST has "
            f"({len(pools['train'])} and {len(pools['test'])}): at most 8 domains of fashion-mux's sizes"
        )
    for domain in mux_domains + plain_domains:
        sizes = SIZES | {"train": mux_train} if domain in mux_domains else SIZES
        arrays[f"{domain}.classes"] = np.array(FASHION_CLASSES)
        if domain in mux_domains:
            arrays[f"{domain}.mix"] = mix_matrix(np.pi / len(mux_domains) * mux_domains.index(domain), gains)
        for split, size in sizes.items():
            pool = "test" if split == "test" else "train"
            idx = pools[pool][taken[pool] : taken[pool] + size]
            taken[pool] += size
            arrays[f"{domain}.{split}.images"] = source[pool][0][idx][:, None]
            arrays[f"{domain}.{split}.labels"] = source[pool][1][idx]
            arrays[f"{domain}.{split}.source_index"] = idx.astype(np.int64)
            if domain in mux_domains:
                arrays[f"{domain}.{split}.distractors"] = _distractors(size, rng)
    return arrays


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("fashion_mux.npz"))
    args = parser.parse_args(argv)
    write_npz(build(args.raw), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
