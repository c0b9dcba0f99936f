"""A picture of an embedded benchmark: a few training images of every domain, one row each.

    python benchmarks/plot_domains.py --out docs/img/fashion-mux.png
    python benchmarks/plot_domains.py --benchmark fashion-domains --out docs/img/fashion-domains.png
    python benchmarks/plot_domains.py --variant mux-plain-quad --out docs/img/mux-plain-quad.png

``--variant`` draws a design probe of ``mux_variants.py`` instead, built in memory from the
Fashion-MNIST IDX files (``--raw``).

For a colour-multiplexed domain the row is followed by what its first convolution must find:
the labelled garment, unmixed with the inverse of the domain's mixing matrix (the same images).
The last line is ``written=<path>``.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mtlsearch.datasets import EMBEDDED, EMBEDDED_BENCHMARKS, load_embedded

SCALE, PAD, LABEL = 3, 2, 150


def _tile(images: np.ndarray) -> np.ndarray:
    """``[N, 3, H, W]`` uint8 to one ``[H, N*(W+PAD), 3]`` row on white."""
    framed = [np.pad(i.transpose(1, 2, 0), ((PAD, PAD), (PAD, PAD), (0, 0)), constant_values=255) for i in images]
    return np.concatenate(framed, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default=EMBEDDED, choices=list(EMBEDDED_BENCHMARKS))
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/img/fashion-mux.png"))
    parser.add_argument("--variant", help="a design probe of mux_variants.py instead of an embedded benchmark")
    parser.add_argument("--raw", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST's gzipped IDX files (for --variant)")
    args = parser.parse_args()
    notes: dict[str, str] = {}  # what a row's label adds to the domain's name
    if args.variant:
        from mux_variants import VARIANTS, variant, variant_arrays

        if args.variant not in VARIANTS:
            parser.error(f"no variant {args.variant!r}: choose from {sorted(VARIANTS)}")
        tasks = variant(args.variant, args.raw)[0]
        mixes = {k: a for k, a in variant_arrays(args.variant, args.raw).items() if k.endswith(".mix")}
        corners = ("top left", "top right", "bottom left", "bottom right")
        notes = {d: f" (label {corners[c]})" for d, c in VARIANTS[args.variant].quads().items()}
    else:
        tasks = load_embedded(args.benchmark)
        with np.load(resources.files("mtlsearch.datasets").joinpath(EMBEDDED_BENCHMARKS[args.benchmark].file)) as archive:  # type: ignore[arg-type]
            mixes = {k: archive[k] for k in archive.files if k.endswith(".mix")}
    rows: list[tuple[str, np.ndarray]] = []
    for task in tasks:
        images = task.train.images[: args.images]
        names = ", ".join(task.classes[c] for c in task.train.labels[:3])
        rows.append((f"{task.name}{notes.get(task.name, '')}\n({names}, ...)", _tile(images)))
        if f"{task.name}.mix" in mixes:
            unmixed = np.einsum("nchw,kc->nkhw", images.astype(np.float64) - 127.5, np.linalg.inv(mixes[f"{task.name}.mix"]))[:, :1]
            grey = np.repeat(np.rint(np.clip(unmixed, 0, 1) * 255).astype(np.uint8), 3, axis=1)
            rows.append(("  its labelled garment\n  (unmixed)", _tile(grey)))
    width = LABEL + rows[0][1].shape[1] * SCALE
    height = sum(r.shape[0] * SCALE for _, r in rows)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    top = 0
    for label, row in rows:
        picture = Image.fromarray(row).resize((row.shape[1] * SCALE, row.shape[0] * SCALE), Image.NEAREST)
        canvas.paste(picture, (LABEL, top))
        draw.multiline_text((6, top + 20), label, fill="black")
        top += picture.height
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    print(f"written={args.out}")


if __name__ == "__main__":
    main()
