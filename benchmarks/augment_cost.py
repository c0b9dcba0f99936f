"""What train-time augmentation costs a training step: random-resized crop and flip (``--augment``).

    python benchmarks/augment_cost.py                       # 224 px, MobileNetV2, 5 tasks x 8, CPU
    python benchmarks/augment_cost.py --device cuda:0 --batch 32

The same multi-domain training step (``train_step``, the tasks run as ``--execution`` says) on
batches taken as they are, and on the same batches first cropped and flipped by
``TrainAugment`` where they lie (one ``grid_sample`` per task batch, on the device), timed side
by side in interleaved rounds. Target on the CPU: under 1.15. The last line is
``ratio=<seconds a step with augmentation / without>``.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from _timing import seconds_per_step
from mtlsearch import Fidelity
from mtlsearch._train import fast_path, make_optimizer, resolve_device, train_step
from mtlsearch.datasets import TrainAugment
from mtlsearch.models import backbone_spec, build_model, strategy_allocation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv2_100")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="images per task and step")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--budget", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--execution", choices=("loop", "stacked"), default="stacked")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    spec = backbone_spec(args.backbone)
    allocation = strategy_allocation("bottom-specific", spec, "block", args.budget)
    model = build_model(args.backbone, num_classes=[10] * args.tasks, allocation=allocation, granularity="block").to(device).train()
    optimizer, _ = make_optimizer(model, Fidelity(lr=0.01), 1)
    precision = fast_path(model, device)
    size = (args.batch, 3, args.image_size, args.image_size)
    batches = [(torch.randint(0, 256, size, dtype=torch.uint8, device=device), torch.randint(0, 10, (args.batch,), device=device))
               for _ in range(args.tasks)]  # fmt: skip
    augment, generator = TrainAugment(), torch.Generator().manual_seed(0)
    stacked = args.execution == "stacked"

    def plain() -> None:
        train_step(model, optimizer, batches, precision, stacked=stacked)

    def augmented() -> None:
        train_step(model, optimizer, [(augment(x, generator), y) for x, y in batches], precision, stacked=stacked)

    def timed(step) -> float:  # type: ignore[no-untyped-def]
        return seconds_per_step(step, args.steps, device)

    seconds: dict[str, list[float]] = {"without": [], "with": []}
    for r in range(args.rounds):
        for name in (("without", "with") if r % 2 == 0 else ("with", "without")):
            seconds[name].append(timed(plain if name == "without" else augmented))
    median = {k: statistics.median(v) for k, v in seconds.items()}
    card = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    print(f"device={device} ({card}) backbone={args.backbone} tasks={args.tasks} batch/task={args.batch} image={args.image_size}px "
          f"execution={args.execution} threads={torch.get_num_threads()}")
    print(f"a step without augmentation: {median['without'] * 1000:.0f} ms, with: {median['with'] * 1000:.0f} ms (medians of {args.rounds} rounds)")
    print(f"ratio={median['with'] / median['without']:.3f}")


if __name__ == "__main__":
    main()
