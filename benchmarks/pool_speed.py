"""The stem's max-pool in a CPU training step: ``nn.MaxPool2d`` against ``CpuMaxPool2d``.

    python benchmarks/pool_speed.py [--preset embedded] [--threads 2] [--rounds 6] [--steps 15]

The CPU trains in the default (NCHW) layout, where PyTorch's max-pool forward is about ten
times as slow as channels-last; since 2026-12-08 the multi-domain network swaps every
``nn.MaxPool2d`` of its backbone for ``CpuMaxPool2d``, which finds the maxima channels-last
and passes the gradients back in NCHW. This script builds the preset's candidate
(``--strategy``), copies it twice, puts ``nn.MaxPool2d`` back into one copy, and runs both
copies through the same training steps (the preset's batch of every task, stacked as the
preset trains) in interleaved rounds, with one optimiser each. It checks that both give
the same loss on every step and the same weights at the end, bit for bit. The last line is
``ratio=``, the seconds of a step with ``nn.MaxPool2d`` over those with ``CpuMaxPool2d``
(medians of the rounds after the first).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from _quality import add_candidate_options, cpu_candidate
from mtlsearch._train import make_optimizer, train_step
from mtlsearch.models._layers import CpuMaxPool2d


def with_torch_pool(model: nn.Module) -> int:
    """Puts an ``nn.MaxPool2d`` back wherever the network holds a ``CpuMaxPool2d``; returns
    how many."""
    swapped = [name for name, m in model.named_modules() if isinstance(m, CpuMaxPool2d)]
    for name in swapped:
        model.set_submodule(name, model.get_submodule(name).torch_pool())
    return len(swapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_candidate_options(parser)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=15, help="training steps a round")
    args = parser.parse_args()
    settings, tasks, built, _ = cpu_candidate(args, epochs=0)
    models = {"nn.MaxPool2d": copy.deepcopy(built), "CpuMaxPool2d": copy.deepcopy(built)}
    if not with_torch_pool(models["nn.MaxPool2d"]):
        raise SystemExit(f"{settings.backbone} has no max-pool: nothing to compare")
    stacked = settings.execution != "loop"
    batch = settings.fidelity.batch_size
    generator = torch.Generator().manual_seed(0)
    steps = []
    for _ in range(args.steps):
        picks = [(torch.randint(len(t.train.labels), (batch,), generator=generator), t) for t in tasks]
        steps.append([(torch.from_numpy(t.train.images)[i], torch.from_numpy(t.train.labels)[i]) for i, t in picks])
    optimizers = {name: make_optimizer(m.train(), settings.fidelity, args.rounds * args.steps)[0] for name, m in models.items()}
    seconds: dict[str, list[float]] = {name: [] for name in models}
    losses: dict[str, list[float]] = {name: [] for name in models}
    for r in range(args.rounds):
        for name in list(models) if r % 2 == 0 else reversed(list(models)):
            start = time.perf_counter()
            for batches in steps:
                losses[name].append(float(train_step(models[name], optimizers[name], batches, stacked=stacked)))
            if r:  # the first round warms oneDNN's caches up
                seconds[name].append((time.perf_counter() - start) / len(steps))
    median = {name: statistics.median(v) for name, v in seconds.items()}
    print(f"preset={args.preset} backbone={settings.backbone} strategy={args.strategy} tasks={len(tasks)} batch={batch} "
          f"stacked={stacked} threads={torch.get_num_threads()} steps={args.rounds} x {args.steps}")  # fmt: skip
    for name, values in seconds.items():
        print(f"{name + ':':14} {1e3 * median[name]:6.1f} ms a step (rounds {1e3 * min(values):.1f}-{1e3 * max(values):.1f} ms)")
    same_loss = losses["nn.MaxPool2d"] == losses["CpuMaxPool2d"]
    a, b = (dict(m.named_parameters()) for m in models.values())
    same_weights = all(torch.equal(a[k], b[k]) for k in a)
    print(f"the same loss on all {len(losses['CpuMaxPool2d'])} steps: {same_loss}; the same weights after them: {same_weights}")
    print(f"ratio={median['nn.MaxPool2d'] / median['CpuMaxPool2d']:.3f}")


if __name__ == "__main__":
    main()
