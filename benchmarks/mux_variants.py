"""Design probes for the next embedded benchmark: fashion-mux's recipe with other mixes of domains.

    python benchmarks/mux_variants.py --variants fashion-mux mux8 fashion-mux-clear --seeds 0 1 2

fashion-mux misses the benchmark issue's margins because its two kinds of domain pull them
opposite ways (docs/search-quality.md, section 2a): bottom-specific gains on the multiplexed
domains and loses on the plain ones. Each variant here is built in memory by
``build_fashion_mux.build`` from the Fashion-MNIST IDX files (``--raw``) with another count of
multiplexed and plain domains or other mixing gains. The variant ``fashion-mux`` is the shipped
file itself: it is checked byte for byte against it and shares its cached rows. The ``carrier``
variant renders its multiplexed domains another way (``carrier_images``): each garment
modulates a fixed 2x2 colour pattern tiled over the image, the domain's own for the labelled
garment and the next two domains' for the distractors, so that a shared first convolution
needs one matched filter per domain instead of one colour angle. ``mux-scarce`` and
``all-scarce`` are fashion-mux's arrays trained on the first 125 of a domain's 250 training
images (``Variant.train``): the multiplexed domains', or every domain's; ``mux-rich`` gives each
multiplexed domain 1,000 (train it at ``--fidelity 6x1000``: as many steps as 25x250), and
``mux-500`` 500 (at ``12x500``).
``checker-trap`` draws the brightness distractor on a one-pixel checkerboard
(``checker_images``). ``mux-quad`` renders the four plain domains as quadrant mosaics
(``quad_images``: four garments at half size, the label the one in the domain's own quadrant),
``mux-plain-quad`` two of them, and ``mux-quad-same`` all four with the label in the same
quadrant; on a variant with quadrant domains the candidates include two more hand-made
allocations, the first convolution with the rest of the budget in layer3, or in layer2 and
layer3 (``MIDDLES``).

On every variant, the four baselines and five hand-made allocations (the first convolution
task-specific whole, half and a quarter of its filters, the deep stem's three convolutions, and
the first convolution with the rest of the budget where top-specific puts it: the
multiplexed domains need a few filters of their own at the input, the plain ones lose wherever
their filters are split) are trained with
the worker's recipe at the preset's fidelity, with every seed, in processes of one torch thread
each. Every row is kept in ``benchmarks/results/trained.jsonl`` keyed by the variant and the
digest of its arrays, so a rerun trains only what is missing. Prints, per variant, the report
of ``benchmark_separation.py``, and keeps every variant's in
``benchmarks/results/mux_variants-<fidelity>-<cpu kind>.json``. The last line is
``best_variant=<name> handmade_minus_best=<mean> noise=<std>`` for the variant whose first
hand-made allocation leads the best baseline by the most, in units of its noise.

``--only`` trains a subset of the candidates (a quick probe; 1a is then over the baselines
trained, 1b only with both bottom- and top-specific), ``--fidelity`` another recipe, cached
under its name: ``25x250+lr0.05`` another learning rate, ``25x125`` at most the first 125 of a
domain's training images (until 2026-12-05 the count was not applied, and the rows so trained
are kept under the 250 images they had), ``--backbone`` another registered backbone (cached
under the data id with the backbone), and ``--weights`` a checkpoint every candidate starts
from (``pretrain_backbone.py``; cached under the data id with the checkpoint's digest).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import tempfile
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from _quality import RESULTS, Cache, _train_row, candidate, data_id, embedded, fidelity_name, from_checkpoint, kind_slug, start_of, with_fidelity
from benchmark_separation import candidates as fixed_candidates
from benchmark_separation import report
from mtlsearch.datasets import resize_tasks, tasks_of
from mtlsearch.datasets.build_fashion_domains import write_npz
from mtlsearch.datasets._mux import GREY
from mtlsearch.datasets.build_fashion_mux import SIZES, build, domains
from mtlsearch.models import backbone_spec
from mtlsearch.models._strategies import fill


class Variant(NamedTuple):
    """A build of the benchmark: how many multiplexed and plain domains, the gains of the labelled
    garment and of the brightness and chroma distractors (for ``carrier``: of the labelled garment
    and the two distractors), whether the multiplexed domains are rendered with carriers, and the
    training images of a multiplexed and of a plain domain."""

    mux: int
    plain: int
    gains: tuple[float, float, float]
    carrier: bool = False
    train: tuple[int, int] = (250, 250)
    checker: bool = False  # the brightness distractor modulated by a one-pixel checkerboard
    quad: int = 0  # how many of the plain domains, the last ones, are rendered as quadrant mosaics (``quad_images``)
    corner: int | None = None  # the quadrant of every quadrant domain's label (default: the i-th domain's is i mod 4)

    def quads(self) -> dict[str, int]:
        """The quadrant domains and the quadrant (0 top left to 3 bottom right) that holds each one's label."""
        plain = domains(self.mux, self.plain)[1]
        return {d: i % 4 if self.corner is None else self.corner for i, d in enumerate(plain[self.plain - self.quad :])}


VARIANTS = {
    "fashion-mux": Variant(4, 4, (1.0, 1.5, 1.0)),
    "mux8": Variant(8, 0, (1.0, 1.5, 1.0)),
    "fashion-mux-clear": Variant(4, 4, (1.5, 1.5, 1.0)),  # both distractors fainter against the label
    "clear-mux5-plain3": Variant(5, 3, (1.5, 1.5, 1.0)),
    "clear-mux6-plain2": Variant(6, 2, (1.5, 1.5, 1.0)),
    "faint-chroma": Variant(4, 4, (1.0, 1.5, 0.5)),  # the brightness trap kept, the chroma distractor fainter
    "faint-chroma-strong-trap": Variant(4, 4, (1.0, 2.0, 0.5)),
    "plain8": Variant(0, 8, (1.0, 1.5, 1.0)),  # no multiplexed domain: what a split first conv costs grey garments alone
    "mux2-plain6": Variant(2, 6, (1.0, 1.5, 1.0)),  # plain domains in the majority: bottom-specific loses, the trap is stronger
    "mux3-plain5": Variant(3, 5, (1.0, 1.5, 1.0)),  # between it and fashion-mux
    "no-chroma-distractor": Variant(4, 4, (1.0, 1.5, 0.0)),  # after its own first conv a multiplexed image is a clean garment
    "label-only": Variant(4, 4, (1.0, 0.0, 0.0)),  # no distractor: a garment in a colour-opponent direction, nothing to cancel
    "faint-trap": Variant(4, 4, (1.0, 0.5, 0.0)),  # between no-chroma-distractor and label-only: a dimmer brightness distractor
    # spatio-chromatic carriers (``carrier_images``): the gains are the labelled garment's and the two distractors'
    "carrier": Variant(4, 4, (1.0, 1.0, 1.0), carrier=True),
    "mux-scarce": Variant(4, 4, (1.0, 1.5, 1.0), train=(125, 250)),  # fashion-mux with 125 training images in each multiplexed domain
    "all-scarce": Variant(4, 4, (1.0, 1.5, 1.0), train=(125, 125)),  # fashion-mux with 125 training images in every domain (train it at 50x250)
    # the brightness distractor on a one-pixel checkerboard (``checker_images``): meant as a trap for
    # filters that read brightness edges, off colour and off frequency for a domain's own; measured,
    # it passes no smooth filter, shared or own, so it traps nothing (docs/search-quality.md, 2a)
    "checker-trap": Variant(4, 4, (1.0, 1.5, 0.0), checker=True),
    # fashion-mux with 1,000 training images in each multiplexed domain (train it at 6x1000: as many
    # steps as 25x250, the plain domains seen 24 times): more images to learn the unmixing from
    "mux-rich": Variant(4, 4, (1.0, 1.5, 1.0), train=(1000, 250)),
    "mux-500": Variant(4, 4, (1.0, 1.5, 1.0), train=(500, 250)),  # between fashion-mux and mux-rich (train it at 12x500)
    "mux-rich-trap": Variant(4, 4, (1.0, 3.0, 1.0), train=(1000, 250)),  # and a brightness distractor twice as bright
    "mux6-plain2-500": Variant(6, 2, (1.0, 1.5, 1.0), train=(500, 250)),  # mux-500's sizes, three quarters multiplexed (train it at 12x500)
    "mux-500-trap": Variant(4, 4, (1.0, 3.0, 1.0), train=(500, 250)),  # mux-500 with a brightness distractor twice as bright
    # mux2-plain6 (the plain majority that met 1b reversed) with a brighter trap: a larger own-filter
    # gain on the two multiplexed domains for target 2, the plain domains' loss under split layers for 1b
    "mux2-plain6-trap2": Variant(2, 6, (1.0, 2.0, 1.0)),
    "mux2-plain6-trap3": Variant(2, 6, (1.0, 3.0, 1.0)),
    # fashion-mux with the brightness distractor twice as bright: from a backbone pretrained on grey
    # garments (``--weights``, pretrain_backbone.py) a shared first convolution starts reading it
    "mux-trap3": Variant(4, 4, (1.0, 3.0, 1.0)),
    # from a weakly pretrained backbone (pretrain_backbone.py --images 2000) both groups of fashion-mux
    # separate bottom- from top-specific, in opposite directions; more multiplexed domains were to let
    # theirs win, and did not (their own gain shrinks: docs/search-quality.md, section 2a)
    "mux5-plain3": Variant(5, 3, (1.0, 1.5, 1.0)),
    "mux6-plain2": Variant(6, 2, (1.0, 1.5, 1.0)),
    # meant as a shift near the output: the four plain domains become quadrant mosaics
    # (``quad_images``), each domain's label in its own quadrant, which a convolution can tell
    # only from the map's edges. Measured, these domains gain from split layers where the maps
    # are 7x7 and 4x4, which the multiplexed domains lose from, and the baselines swing less
    # (docs/search-quality.md, section 2a, "A shift near the output")
    "mux-quad": Variant(4, 4, (1.0, 1.5, 1.0), quad=4),
    # two plain domains kept, for the cost of a split stem that puts the first conv ahead of
    # bottom-specific on fashion-mux; two quadrant domains, for the steadier baselines of mux-quad
    "mux-plain-quad": Variant(4, 4, (1.0, 1.5, 1.0), quad=2),
    # mux-quad with every quadrant domain labelled top left: four domains of one task, which lose
    # from split layers as plain domains do, in mosaics (is mux-quad's steadiness the mosaics'?)
    "mux-quad-same": Variant(4, 4, (1.0, 1.5, 1.0), quad=4, corner=0),
}
CARRIER_SEED = 20261129
QUAD_SEED = 20261208

HALF_CONV = ("hand-made: half the first conv", {"conv1.0": 0.5})
QUARTER_CONV = ("hand-made: a quarter of the first conv", {"conv1.0": 0.25})  # 2 of its 8 filters
STEM = ("hand-made: the stem", {"conv1.0": 1.0, "conv1.3": 1.0, "conv1.6": 1.0})  # the deep stem's three convs
# for ``quad`` variants: the first conv, then the budget filled in this order (as bottom-specific
# fills it from the input), from layer3 (4x4 maps) or from layer2 (7x7 maps) on
MIDDLES = {
    "hand-made: first conv and layer3": ("layer3.0.conv1", "layer3.0.downsample.0", "layer3.0.conv2", "layer3.1.conv1", "layer3.1.conv2"),
    "hand-made: first conv, layer2 and layer3": (
        "layer2.0.conv1", "layer2.0.downsample.0", "layer2.0.conv2", "layer2.1.conv1", "layer2.1.conv2",
        "layer3.0.conv1", "layer3.0.downsample.0", "layer3.0.conv2",
    ),
}


def carriers(count: int) -> np.ndarray:
    """``count`` orthonormal colour patterns of 2x2 pixels, ``[count, 3, 2, 2]``, with no brightness
    and no mean in any colour over the tile: invisible to a filter that reads brightness or
    smooth colour, readable only by a filter matched to the pattern (at most six fit)."""
    # two colour-opponent axes; another basis of the plane than _mux's, which the cached rows were drawn with
    chroma = np.linalg.svd(np.eye(3) - np.outer(GREY, GREY))[0][:, :2].T
    spatial = np.array([[[1, -1], [1, -1]], [[1, 1], [-1, -1]], [[1, -1], [-1, 1]]], dtype=np.float64) / 2.0
    basis = np.einsum("ac,sij->ascij", chroma, spatial).reshape(6, 3, 2, 2)  # orthonormal, 6 patterns
    rng = np.random.default_rng(CARRIER_SEED)
    mix = np.linalg.qr(rng.standard_normal((6, 6)))[0][:count]
    return np.einsum("kb,bcij->kcij", mix, basis)


def _garments(garments: np.ndarray, distractors: np.ndarray) -> np.ndarray:
    """``[N, 3, H, W]`` floats in [0, 1]: each image's garment and its two distractor garments."""
    grey = garments.reshape(len(garments), *garments.shape[-2:]).astype(np.float64) / 255.0
    return np.stack([grey, grey[distractors[:, 0]], grey[distractors[:, 1]]], axis=1)


def carrier_images(garments: np.ndarray, distractors: np.ndarray, patterns: np.ndarray, own: int, gains: tuple[float, ...]) -> np.ndarray:
    """``uint8 [N, 3, H, W]``: garment ``i`` modulates the domain's own pattern (tiled over the
    image), its two distractors modulate the next two domains' patterns, around mid grey. One
    filter matched to the own pattern and blind to the other two reads the label; a filter bank
    shared by every domain needs one such filter per domain."""
    count = len(patterns)
    stack = _garments(garments, distractors)  # [N, 3 garments, H, W]
    h, w = stack.shape[-2:]
    tiled = np.tile(patterns, (1, 1, h // 2, w // 2))  # [count, 3, H, W]
    which = [own, (own + 1) % count, (own + 2) % count]
    weights = np.asarray(gains)[:, None, None, None] * tiled[which]  # [3, 3, H, W]
    reach = np.abs(weights).sum(axis=0).max()
    mixed = 127.5 + np.einsum("nkhw,kchw->nchw", stack, weights) * (127.5 / reach)
    return np.rint(np.clip(mixed, 0, 255)).astype(np.uint8)


def checker_images(garments: np.ndarray, distractors: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """``uint8 [N, 3, H, W]`` as ``render_mux`` draws them, except that the brightness distractor
    (``mix[:, 1]``) is multiplied by a one-pixel checkerboard of +1 and -1; the mix is scaled
    again so that no channel leaves [0, 255]."""
    stack = _garments(garments, distractors)
    h, w = stack.shape[-2:]
    stack[:, 1] *= np.where((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0, 1.0, -1.0)
    up = np.clip(mix[:, 0], 0, None) + np.abs(mix[:, 1]) + np.clip(mix[:, 2], 0, None)
    down = -np.clip(mix[:, 0], None, 0) + np.abs(mix[:, 1]) - np.clip(mix[:, 2], None, 0)
    scaled = mix * (127.5 / max(up.max(), down.max()))
    mixed = 127.5 + np.einsum("nkhw,ck->nchw", stack, scaled)
    return np.rint(np.clip(mixed, 0, 255)).astype(np.uint8)


def quad_images(garments: np.ndarray, own: int, rng: np.random.Generator) -> np.ndarray:
    """``uint8 [N, 1, H, W]``: four garments at half size, one to a quadrant. Garment ``i`` sits
    in quadrant ``own`` (0 top left, 1 top right, 2 bottom left, 3 bottom right) and three other
    garments of the same split, drawn without repeats, fill the other three. Every domain's
    images look alike; only the quadrant that holds the label differs."""
    n, _, h, w = garments.shape
    small = garments.reshape(n, h // 2, 2, w // 2, 2).astype(np.float64).mean(axis=(2, 4))
    offsets = np.stack([rng.choice(n - 1, size=3, replace=False) + 1 for _ in range(n)])
    picks = np.concatenate([np.arange(n)[:, None], (np.arange(n)[:, None] + offsets) % n], axis=1)
    out = np.zeros((n, h, w))
    for slot, quadrant in enumerate([own] + [q for q in range(4) if q != own]):
        row, col = divmod(quadrant, 2)
        out[:, row * h // 2 : (row + 1) * h // 2, col * w // 2 : (col + 1) * w // 2] = small[picks[:, slot]]
    return np.rint(out).astype(np.uint8)[:, None]


@functools.cache
def variant_arrays(name: str, raw: str) -> dict[str, np.ndarray]:
    """A variant's arrays as its file would store them, every domain that is not the builder's
    rendered here (``.mix`` is left only on the multiplexed domains that ``tasks_of`` renders)."""
    v = VARIANTS[name]
    mux, plain = v.mux, v.plain
    # fewer than the shipped 250 are the first of them (``with_train_size`` in ``variant``)
    arrays = build(Path(raw), mux=mux, plain=plain, gains=v.gains, mux_train=max(v.train[0], SIZES["train"]))
    if v.carrier or v.checker:  # the multiplexed domains rendered here, stored as colour images
        patterns = carriers(mux) if v.carrier else None
        for i, domain in enumerate(domains(mux, plain)[0]):
            mix = arrays.pop(f"{domain}.mix")
            for split in ("train", "val", "test"):
                images, distractors = arrays[f"{domain}.{split}.images"], arrays.pop(f"{domain}.{split}.distractors")
                arrays[f"{domain}.{split}.images"] = (
                    carrier_images(images, distractors, patterns, i, v.gains) if v.carrier else checker_images(images, distractors, mix)
                )
    rng = np.random.default_rng(QUAD_SEED)
    for domain, corner in v.quads().items():  # the plain domains rendered here, stored as grey mosaics
        for split in ("train", "val", "test"):
            arrays[f"{domain}.{split}.images"] = quad_images(arrays[f"{domain}.{split}.images"], corner, rng)
    return arrays


@functools.cache
def variant(name: str, raw: str) -> tuple[list, str]:
    """The tasks of a variant at 28 px and their data id (the shipped file's for fashion-mux)."""
    v = VARIANTS[name]
    arrays = variant_arrays(name, raw)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "variant.npz"
        write_npz(arrays, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    shipped = data_id(embedded("fashion-mux-scratch"))
    data = shipped if name == "fashion-mux" else f"fashion-mux-variant:{name}@{digest}"
    if name == "fashion-mux" and not shipped.endswith(digest):
        raise SystemExit(f"the in-memory build of fashion-mux ({digest}) is not the shipped file ({shipped}): rebuild it first")
    names = domains(v.mux, v.plain)
    sizes = dict.fromkeys(names[0], v.train[0]) | dict.fromkeys(names[1], v.train[1])
    return [t.with_train_size(sizes[t.name]) for t in resize_tasks(tasks_of(arrays, names[0] + names[1]), 28)], data


def _job(job: tuple) -> dict:  # type: ignore[type-arg]
    name, raw, data, settings, allocation, seed, label = job
    torch.set_num_threads(1)
    return _train_row(settings, allocation, seed, label, tasks=variant(name, raw)[0], data=data) | {"variant": name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fidelity", help="EPOCHSxIMAGES, with +lr<value> for another learning rate (default: the preset's)")
    parser.add_argument("--raw", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST's gzipped IDX files")
    parser.add_argument("--processes", type=int, default=2, help="training processes, one torch thread each")
    parser.add_argument("--only", nargs="+", metavar="LABEL", help="train and report only these candidates (default: every one)")
    parser.add_argument("--backbone", help="another registered backbone (default: the preset's)")
    parser.add_argument("--weights", help="a checkpoint of the backbone to start from (pretrain_backbone.py; cached under the data id with its digest)")
    args = parser.parse_args()
    if len(set(args.seeds)) < 2:
        parser.error("give at least two --seeds: every difference is paired by seed and judged by its std over them")
    settings = embedded("fashion-mux-scratch")
    # a candidate's key is its filter counts, which two backbones may share: another backbone's
    # rows are kept under the data id with the backbone
    other = f" on {args.backbone}" if args.backbone and args.backbone != settings.backbone else ""
    suffix = ""  # what the data id adds for rows not trained as the preset trains them
    if other:
        from mtlsearch.models import BACKBONES

        if args.backbone not in BACKBONES:
            parser.error(f"no backbone {args.backbone!r}: choose from {sorted(BACKBONES)}")
        settings = replace(settings, backbone=args.backbone)
        suffix += f"|backbone={args.backbone}"
    if args.weights:  # every candidate starts from the checkpoint: other rows than from a random start
        settings = from_checkpoint(settings, args.weights)
        other += f" from weights {settings.weights_sha256[:12]}"
        suffix += start_of(settings)
    if args.fidelity:
        settings = with_fidelity(settings, args.fidelity)
    fid = fidelity_name(settings.fidelity)
    allocations = {k: v for k, v in fixed_candidates(settings).items() if k != "independent"} | dict([HALF_CONV, QUARTER_CONV, STEM])
    # the first convolution, and the rest of the budget where top-specific puts it
    allocations["hand-made: first conv and the top"] = allocations["top-specific"] | {"conv1.0": 1.0}
    if any(VARIANTS[name].quad for name in args.variants):  # the first conv, and the rest of the budget in the middle
        spec = backbone_spec(settings.backbone)
        for label, middle in MIDDLES.items():
            allocations[label] = fill(spec, settings.granularity, ["conv1.0", *middle], settings.budget)
    if args.only:
        unknown = sorted(set(args.only) - set(allocations))
        if unknown:
            parser.error(f"no candidate {unknown[0]!r}: choose from {sorted(allocations)}")
        allocations = {k: v for k, v in allocations.items() if k in args.only}
    cache = Cache(RESULTS / "trained.jsonl")
    data = {name: variant(name, args.raw)[1] + suffix for name in args.variants}
    key = {label: candidate(settings, allocation).key for label, allocation in allocations.items()}  # 8 tasks in every variant
    jobs = [(name, args.raw, data[name], settings, allocation, seed, label) for name in args.variants for label, allocation in allocations.items() for seed in args.seeds]
    missing = [job for job in jobs if cache.get(key[job[6]], fid, job[5], job[2]) is None]
    print(f"{len(jobs)} trainings, {len(missing)} not cached, fidelity {fid}, seeds {args.seeds}", flush=True)
    if missing:
        with get_context("spawn").Pool(args.processes) as pool:
            for row in pool.imap_unordered(_job, missing):
                cache.put(row)
                print(f"  {row['variant']:<18} {row['label']:<32} seed {row['seed']}: {row['accuracy']:.4f} in {row['seconds']:.0f} s", flush=True)
    leader = ("", 0.0, 0.0)
    out = RESULTS / f"mux_variants-{fid}-{kind_slug()}.json"
    summary = json.loads(out.read_text()) if out.exists() else {}  # the variants of earlier runs stay
    for name in args.variants:
        mux, plain, gains = VARIANTS[name].mux, VARIANTS[name].plain, VARIANTS[name].gains
        rows: dict[str, list[dict]] = {}
        for label in allocations:
            rows[label] = [cache.get(key[label], fid, seed, data[name]) for seed in args.seeds]  # type: ignore[misc]
        names = domains(mux, plain)
        print(f"\n{name}: {mux} multiplexed and {plain} plain domains, gains {gains}, fidelity {fid} ({data[name]})")
        found = report(rows, {g: d for g, d in (("multiplexed", names[0]), ("plain", names[1])) if d})
        summary[name + other] = {"mux": mux, "plain": plain, "gains": gains, "backbone": settings.backbone, "data": data[name], "seeds": args.seeds, **found}
        mean, std, _ = found["handmade_minus_best"]
        if std > 0 and (not leader[0] or mean / std > leader[1] / leader[2]):
            leader = (name, mean, std)
    out.write_text(json.dumps(summary, indent=1))
    print(f"best_variant={leader[0]} handmade_minus_best={leader[1]:.4f} noise={leader[2]:.4f}")


if __name__ == "__main__":
    main()
