"""A design probe: the narrow ResNet pretrained on grey Fashion-MNIST garments the benchmark does not hold.

    python benchmarks/pretrain_backbone.py --epochs 6
    python benchmarks/mux_variants.py --variants fashion-mux --weights benchmarks/results/pretrained/resnet18-narrow-grey-6ep-seed0.pt

The paper this tool builds on, and every multi-domain benchmark of its kind, starts the shared
network from pretrained weights; the embedded benchmarks start from a random one. Section 2a of
docs/search-quality.md found most of fashion-mux's seed noise in one place: whether a shared
first convolution, from its random start, happens to learn to read a multiplexed domain's
colour past the brighter distractor. A backbone pretrained on grey garments starts every seed
from the same filters, and those read brightness (on grey images the colour-opponent part of a
filter gets no gradient): a shared first convolution then starts in the trap, not at a draw.

The probe trains ``resnet18-narrow`` with a 10-class linear head on the Fashion-MNIST training
images that the shipped fashion-mux file does not use (its domains' ``source_index``), grey
(the three channels equal), with the normalisation a study with ``weights`` uses (timm's
ImageNet mean and std), one-cycle SGD, random horizontal flips, and writes the backbone's state
dict (without the head). It prints the accuracy on 2,000 held-out images of that remainder
that it did not train on, and the file's path last. ``--fresh-stem`` writes a copy of a trained
checkpoint whose deep stem is a fresh random initialisation: pretrained layers above a stem
that learns from scratch.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from _quality import RAW, RESULTS
from mtlsearch.datasets._embedded import EMBEDDED_BENCHMARKS, _archive
from mtlsearch.datasets.build_fashion_domains import read_raw
from mtlsearch.models import get_backbone
from mtlsearch.models._input import input_config

HELD_OUT = 2000  # images of the remainder kept for the printed accuracy


def unused_images(raw: Path) -> tuple[np.ndarray, np.ndarray]:
    """The Fashion-MNIST training images and labels that no domain of the shipped fashion-mux uses."""
    source = read_raw(raw)
    images, labels = source["train"]
    with _archive(EMBEDDED_BENCHMARKS["fashion-mux"]).open("rb") as fh, np.load(fh) as shipped:
        used = np.concatenate([shipped[k] for k in shipped.files if k.endswith("source_index") and ".test." not in k])
    keep = np.setdiff1d(np.arange(len(labels)), used)
    return images[keep].reshape(len(keep), 28, 28), labels[keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", default=RAW)
    parser.add_argument("--backbone", default="resnet18-narrow")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=None,
                        help="pretrain on this many of the unused images (default: all but the held-out ones): a weaker start")
    parser.add_argument("--fresh-stem", action="store_true",
                        help="write a copy of the trained checkpoint whose stem (``conv1.*``, ``bn1.*``) is a fresh random one instead")
    args = parser.parse_args()
    sized = "" if args.images is None else f"-{args.images}img"
    out = RESULTS / "pretrained" / f"{args.backbone}-grey-{args.epochs}ep{sized}-seed{args.seed}.pt"
    if args.fresh_stem:  # the layers above keep their pretraining; the stem starts as from scratch
        state = torch.load(out, weights_only=True)
        torch.manual_seed(args.seed + 1)
        fresh = get_backbone(args.backbone).create().state_dict()
        state |= {k: v for k, v in fresh.items() if k.startswith(("conv1.", "bn1."))}
        stem = out.with_name(out.stem + "-fresh-stem.pt")
        torch.save(state, stem)
        print(f"weights={stem}")
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images, labels = unused_images(Path(args.raw))
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(labels))
    test, train = order[:HELD_OUT], order[HELD_OUT:]
    if args.images is not None:
        if not 0 < args.images <= len(train):
            raise SystemExit(f"--images {args.images}: the remainder holds {len(train)} training images; pass 1 to {len(train)}")
        train = train[: args.images]
    config = input_config(args.backbone, size=28, imagenet=True)  # what a study with ``weights`` normalises with
    x = config.normalise(torch.from_numpy(np.repeat(images[:, None], 3, axis=1)))
    y = torch.from_numpy(labels.astype(np.int64))
    backbone = get_backbone(args.backbone).create()
    head = nn.Linear(backbone.num_features, 10)
    model = nn.Sequential(backbone, head)
    batch = 128
    steps = math.ceil(len(train) / batch) * args.epochs
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.from_numpy(train)[torch.randperm(len(train), generator=generator)]
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            xb = x[idx]
            flip = torch.rand(len(idx), generator=generator) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            idx = torch.from_numpy(test)
            accuracy = (model(x[idx]).argmax(1) == y[idx]).float().mean().item()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, held-out accuracy {accuracy:.4f}, {time.perf_counter() - started:.0f} s", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(backbone.state_dict(), out)
    print(f"{len(train)} training images, sha256 {hashlib.sha256(out.read_bytes()).hexdigest()[:12]}")
    print(f"weights={out}")


if __name__ == "__main__":
    main()
