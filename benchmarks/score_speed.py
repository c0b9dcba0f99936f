"""Scoring a trained candidate on its validation images: the layout and batch before and now.

    python benchmarks/score_speed.py [--preset embedded] [--threads 2] [--rounds 5] [--sizes 125 250 500]

Every trial ends by scoring its candidate on every task's validation images (20,000 on the
embedded default). Until 2026-12-07 the CPU scored them in the default (NCHW) layout, 500 images
a forward pass; ``evaluate`` now lays the input out channels-last on the CPU too (oneDNN's
forward, the stem's max pool above all, is faster there; training keeps NCHW) in batches of
``SCORE_BATCH``. This script trains one candidate briefly (``--strategy``, ``--epochs``, the
preset's recipe), then times both ways on the same model in interleaved rounds, and checks that
they give the same predictions: the images whose predicted class differs (a near tie decided
the other way by a different order of summation) and the largest difference of a task's
accuracy. ``--sizes`` also times today's way at other batch sizes. The last line is
``ratio=``, the seconds of the old way over the new (the median of ``--rounds``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _quality import add_candidate_options, cpu_candidate
from mtlsearch._train import SCORE_BATCH, evaluate, to_model_input


def predictions(model, tasks, *, scoring: bool, batch: int) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    """Each task's predicted classes on its validation images, the input laid out as for
    scoring (``scoring``) or as for training."""
    model.eval()
    out = []
    with torch.inference_mode():
        for index, task in enumerate(tasks):
            data = task.split("val")
            chunks = [
                model(to_model_input(torch.from_numpy(data.images[s : s + batch]), model.input_config, scoring=scoring), index).argmax(1)
                for s in range(0, len(data), batch)
            ]
            out.append(torch.cat(chunks))
    return out


def accuracy(task, predicted: torch.Tensor) -> float:  # type: ignore[no-untyped-def]
    return float((predicted.numpy() == task.split("val").labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_candidate_options(parser)
    parser.add_argument("--epochs", type=int, default=3, help="the brief training before scoring (the preset's other settings)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="also time today's layout at these batch sizes")
    args = parser.parse_args()
    settings, tasks, model, trained = cpu_candidate(args, epochs=args.epochs)
    images = sum(len(t.split("val")) for t in tasks)
    print(f"preset={args.preset} backbone={settings.backbone} strategy={args.strategy} epochs={args.epochs} "
          f"val images={images} threads={torch.get_num_threads()} trained accuracy={trained.accuracy:.4f}")

    before_way, now_way = "before: NCHW, 500 a batch", f"now: evaluate(), channels-last, {SCORE_BATCH['cpu']} a batch"
    ways = {before_way: lambda: predictions(model, tasks, scoring=False, batch=500), now_way: lambda: evaluate(model, tasks)}
    for size in args.sizes:
        ways[f"channels-last, {size} a batch"] = lambda size=size: evaluate(model, tasks, batch_size=size)
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(args.rounds):
        for name in list(ways) if r % 2 == 0 else reversed(list(ways)):
            start = time.perf_counter()
            ways[name]()
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    for name, values in seconds.items():
        print(f"{name + ':':45} {median[name]:6.2f} s ({images / median[name]:,.0f} images/s; rounds {min(values):.2f}-{max(values):.2f} s)")

    before = predictions(model, tasks, scoring=False, batch=500)
    now = predictions(model, tasks, scoring=True, batch=SCORE_BATCH["cpu"])
    differ = sum(int((a != b).sum()) for a, b in zip(before, now))
    gap = max(abs(accuracy(t, a) - accuracy(t, b)) for t, a, b in zip(tasks, before, now))
    print(f"predictions that differ: {differ} of {images}; largest difference of a task's accuracy: {gap:.6f}")
    print(f"ratio={median[before_way] / median[now_way]:.2f}")


if __name__ == "__main__":
    main()
