"""Build the embedded ``fashion-domains`` benchmark from Fashion-MNIST's raw IDX files.

    python -m mtlsearch.datasets.build_fashion_domains \
        --raw /usr/share/datasets/fashion-mnist --out datasets/fashion_domains.npz

Four domains, each from its own disjoint Fashion-MNIST images, each with different low-level
statistics. Rebuilding gives a byte-identical file: fixed seeds, fixed zip timestamps.
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

FASHION_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
COARSE_CLASSES = ("upper body", "lower body and dress", "footwear", "bag")
COARSE_OF_FINE = np.array([0, 1, 0, 1, 0, 2, 0, 2, 3, 2])
SIZES = {"train": 2000, "val": 1000, "test": 1000}
SEED = 20220721
RAW_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _grayscale(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return images[:, None]


def _negative_tint(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inverted, then tinted with one of six saturated colours per image."""
    palette = np.array(
        [[1.0, 0.25, 0.2], [0.2, 0.8, 0.3], [0.25, 0.4, 1.0],
         [1.0, 0.85, 0.1], [0.8, 0.2, 0.9], [0.1, 0.85, 0.9]]
    )  # fmt: skip
    colours = palette[rng.integers(len(palette), size=len(images))]
    inverted = (255.0 - images.astype(np.float64))[:, None]
    return np.rint(inverted * colours[:, :, None, None]).astype(np.uint8)


def _sketch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sobel edge magnitude: outlines only, dark strokes on white paper."""
    x = np.pad(images.astype(np.float64), ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = (x[:, :-2, 2:] + 2 * x[:, 1:-1, 2:] + x[:, 2:, 2:]) - (x[:, :-2, :-2] + 2 * x[:, 1:-1, :-2] + x[:, 2:, :-2])
    gy = (x[:, 2:, :-2] + 2 * x[:, 2:, 1:-1] + x[:, 2:, 2:]) - (x[:, :-2, :-2] + 2 * x[:, :-2, 1:-1] + x[:, :-2, 2:])
    magnitude = np.hypot(gx, gy)
    magnitude /= np.maximum(magnitude.max(axis=(1, 2), keepdims=True), 1e-9)
    return np.rint(255.0 * (1.0 - np.clip(1.5 * magnitude, 0, 1)))[:, None].astype(np.uint8)


def _striped(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Garments filled with stripes, on a background of fainter stripes at another angle."""
    n, h, w = images.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    angle = rng.uniform(0, np.pi, size=(n, 1, 1))
    period = rng.uniform(3.0, 6.0, size=(n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    coord = xx * np.cos(angle) + yy * np.sin(angle)
    front = (np.sin(2 * np.pi * coord / period + phase) > 0).astype(np.float64)
    back_coord = xx * np.cos(angle + np.pi / 2) + yy * np.sin(angle + np.pi / 2)
    back = (np.sin(2 * np.pi * back_coord / 4.0) > 0).astype(np.float64)
    ink = images.astype(np.float64) / 255.0
    out = 255.0 * ink * (0.55 + 0.45 * front) + (1.0 - ink) * 45.0 * back
    return np.rint(np.clip(out, 0, 255))[:, None].astype(np.uint8)


Renderer = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# name -> (renderer, coarse labels?)
DOMAINS: dict[str, tuple[Renderer, bool]] = {
    "grayscale": (_grayscale, False),
    "negative-tint": (_negative_tint, False),
    "sketch": (_sketch, True),
    "striped": (_striped, False),
}


def read_raw(raw: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST's train and test splits from the gzipped IDX files in ``raw``."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    missing = [f for pair in RAW_FILES.values() for f in pair if not (raw / f).is_file()]
    if missing:
        raise SystemExit(
            f"missing {', '.join(missing)} in {raw}: "
            "run 'apt-get install dataset-fashion-mnist' or pass --raw DIR"
        )
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for split, (image_file, label_file) in RAW_FILES.items():
            arrays = []
            for name, reader in ((image_file, read_image_file), (label_file, read_label_file)):
                plain = Path(tmp) / name.removesuffix(".gz")
                with gzip.open(raw / name, "rb") as src, open(plain, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                arrays.append(reader(str(plain)).numpy())
            out[split] = (arrays[0], arrays[1].astype(np.int64))
    return out


def build(raw: Path) -> dict[str, np.ndarray]:
    """Every array of the benchmark file, keyed ``<domain>.<split>.<images|labels>``."""
    source = read_raw(raw)
    rng = np.random.default_rng(SEED)
    pools = {name: rng.permutation(len(source[name][1])) for name in ("train", "test")}
    arrays: dict[str, np.ndarray] = {}
    taken = {"train": 0, "test": 0}
    for domain, (render, coarse) in DOMAINS.items():
        classes = COARSE_CLASSES if coarse else FASHION_CLASSES
        arrays[f"{domain}.classes"] = np.array(classes)
        for split, size in SIZES.items():
            pool_name = "test" if split == "test" else "train"
            idx = pools[pool_name][taken[pool_name] : taken[pool_name] + size]
            taken[pool_name] += size
            images, labels = source[pool_name][0][idx], source[pool_name][1][idx]
            arrays[f"{domain}.{split}.images"] = render(images, rng)
            arrays[f"{domain}.{split}.labels"] = COARSE_OF_FINE[labels] if coarse else labels
            arrays[f"{domain}.{split}.source_index"] = idx.astype(np.int64)
    return arrays


def write_npz(arrays: dict[str, np.ndarray], out: Path) -> None:
    """An ``.npz`` that ``numpy.load`` reads, byte-identical for identical arrays."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_LZMA) as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(2022, 7, 21, 0, 0, 0))
            info.compress_type = zipfile.ZIP_LZMA
            archive.writestr(info, buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("fashion_domains.npz"))
    args = parser.parse_args(argv)
    write_npz(build(args.raw), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
