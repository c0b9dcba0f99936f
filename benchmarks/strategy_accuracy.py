"""The paper's strategies on a preset's benchmark (the control fashion-domains unless --preset):
mean validation accuracy over seeds.

    python benchmarks/strategy_accuracy.py --budget 0.2 --seeds 0 1 2 \
        --strategies bottom-specific top-specific shared independent

Each run trains one strategy with the study's recipe (``mtlsearch.train_allocation``) at the
preset's fidelity (or --epochs / --train-size). ``benchmark_separation.py`` is the measurement of
the embedded default.
The last line is ``bottom_minus_top=<mean accuracy difference>``.
"""

from __future__ import annotations

import argparse
import statistics

import mtlsearch
from mtlsearch._train import resolve_device
from mtlsearch.datasets import load_tasks
from mtlsearch.models import backbone_spec, count_params, strategy_allocation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=["bottom-specific", "top-specific"])
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--preset", default="fashion-domains")
    args = parser.parse_args()
    settings = mtlsearch.study_settings(args.preset, budget=args.budget, epochs=args.epochs, train_size=args.train_size, lr=args.lr)
    tasks = load_tasks(settings.dataset, image_size=settings.image_size, train_size=settings.fidelity.train_size)
    spec = backbone_spec(settings.backbone)
    device = resolve_device(args.device)
    num_classes = [t.num_classes for t in tasks]
    print(f"{settings.backbone}, budget {args.budget}, lr {settings.fidelity.lr}, {settings.fidelity.epochs} epochs x {settings.fidelity.train_size} images per task, seeds {args.seeds}")
    means = {}
    for strategy in args.strategies:
        allocation = strategy_allocation(strategy, spec, settings.granularity, args.budget)  # type: ignore[arg-type]
        counts = count_params(spec, num_classes, allocation, settings.granularity)  # type: ignore[arg-type]
        accuracies = []
        for seed in args.seeds:
            _, result = mtlsearch.train_allocation(allocation, settings, tasks, device=device, seed=seed)
            accuracies.append(result.accuracy)
            tasks_text = " ".join(f"{k}={v:.3f}" for k, v in result.task_accuracy.items())
            print(f"  {strategy:<16} seed {seed}: {result.accuracy:.4f}  ({tasks_text})", flush=True)
        means[strategy] = statistics.mean(accuracies)
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        print(f"{strategy:<16} specific {counts.specific_fraction:.3f} params {counts.total:>9,}  mean {means[strategy]:.4f} +- {spread:.4f}", flush=True)
    if "bottom-specific" in means and "top-specific" in means:
        print(f"bottom_minus_top={means['bottom-specific'] - means['top-specific']:.4f}")


if __name__ == "__main__":
    main()
