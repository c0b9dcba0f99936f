"""Multi-domain training step against plain timm training of the same backbone.

    python benchmarks/step_throughput.py [--backbone resnet18-narrow] [--tasks 4] [--batch 64]

Both take T x b images per step: the multi-domain model one batch of b from each of T tasks
(--budget 0.1, --strategy bottom-specific; per-task norms and heads), plain timm one batch of T x b.
The multi-domain step runs both ways the trainer can run it: task after task ("loop": one
call per layer and task) and all tasks stacked in the channels ("stacked": one grouped call
per layer). Rounds are interleaved in one process so all see the same machine state. The last
lines are ``ratio_loop=``, ``ratio_stacked=`` (multi-domain images/s over plain images/s) and
``ratio=``, the ratio of the faster way, which is the one ``--execution auto`` trains with.
``--profile N`` first prints, for plain timm and for each multi-domain way, a torch profiler
table of the operators that took the most device time over N steps (where the time goes when
the ratio is low). ``--stacked-contiguous`` adds a third way on CUDA: stacked, with weights and
activations in the default (NCHW) layout instead of channels-last, to see whether cuDNN's
grouped convolutions are faster there.
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
import torch.nn.functional as F

from _timing import seconds_per_step
from mtlsearch import Fidelity
from mtlsearch._train import _stacked, fast_path, make_optimizer, resolve_device, to_model_input, train_step
from mtlsearch.models import DEFAULT_INPUT, backbone_spec, build_model, get_backbone, stack_tasks, strategy_allocation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18-narrow")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64, help="images per task and step")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--strategy", default="bottom-specific")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--execution", choices=("both", "loop", "stacked"), default="both")
    parser.add_argument("--stacked-contiguous", action="store_true", help="also time stacked in the NCHW layout (CUDA)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the top operators of N profiled steps of each")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    spec = backbone_spec(args.backbone)
    allocation = strategy_allocation(args.strategy, spec, "block", args.budget)
    multi = build_model(args.backbone, num_classes=[args.classes] * args.tasks, allocation=allocation, granularity="block").to(device)
    plain = get_backbone(args.backbone).create()
    plain.reset_classifier(args.classes)
    plain.to(device)
    fidelity = Fidelity()
    multi_opt, _ = make_optimizer(multi, fidelity, 1)
    plain_opt = torch.optim.SGD(plain.parameters(), lr=fidelity.lr, momentum=0.9, nesterov=True, weight_decay=fidelity.weight_decay, foreach=True)
    size = (args.batch, 3, args.image_size, args.image_size)
    batches = [
        (torch.randint(0, 256, size, dtype=torch.uint8, device=device), torch.randint(0, args.classes, (args.batch,), device=device))
        for _ in range(args.tasks)
    ]
    joined_x = torch.cat([x for x, _ in batches])
    joined_y = torch.cat([y for _, y in batches])

    # the same fast path for both on CUDA (bf16 autocast, channels-last, cuDNN autotuning)
    multi_precision, plain_precision = fast_path(multi, device), fast_path(plain, device)  # type: ignore[arg-type]

    def loop_step() -> None:
        train_step(multi, multi_opt, batches, multi_precision)

    def stacked_step() -> None:
        train_step(multi, multi_opt, batches, multi_precision, stacked=True)

    def plain_step() -> None:
        plain_opt.zero_grad(set_to_none=True)
        with plain_precision:
            loss = F.cross_entropy(plain(to_model_input(joined_x, DEFAULT_INPUT)), joined_y)
        loss.backward()
        plain_opt.step()

    def timed(step) -> float:  # type: ignore[no-untyped-def]
        return args.tasks * args.batch / seconds_per_step(step, args.steps, device, warmup=2)

    multi.train()
    plain.train()
    steps = {"plain": plain_step, "loop": loop_step, "stacked": stacked_step}
    if args.execution != "both":
        del steps["stacked" if args.execution == "loop" else "loop"]
    if args.stacked_contiguous:
        steps["stacked-nchw"] = contiguous_step(multi, batches, fidelity, multi_precision)
    if args.profile:
        for name, step in steps.items():
            print(f"--- {name}: top operators over {args.profile} steps ---")
            print(profile_table(step, args.profile, device))
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        names = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in names:
            rates[name].append(timed(steps[name]))
    median = {name: statistics.median(values) for name, values in rates.items()}
    card = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    print(f"device={device} ({card}) backbone={args.backbone} strategy={args.strategy} budget={args.budget} tasks={args.tasks} "
          f"batch/task={args.batch} image={args.image_size}px threads={torch.get_num_threads()}")
    print(f"plain timm:              {median['plain']:.0f} images/s (median of {args.rounds} rounds)")
    ways = [w for w in ("loop", "stacked", "stacked-nchw") if w in median]
    for way in ways:
        print(f"multi-domain, {way + ':':14}  {median[way]:.0f} images/s")
    for way in ways:
        print(f"ratio_{way.replace('-', '_')}={median[way] / median['plain']:.3f}")
    best = max(median[w] for w in ("loop", "stacked") if w in median)
    print(f"ratio={best / median['plain']:.3f}")


def contiguous_step(multi, batches, fidelity, precision):  # type: ignore[no-untyped-def]
    """A stacked step of a copy of ``multi`` whose weights and input stay in the default (NCHW)
    layout, where ``train_step`` lays them out channels-last on CUDA."""
    model = copy.deepcopy(multi)
    for tensor in (*model.parameters(), *model.buffers()):
        tensor.data = tensor.data.contiguous()
    optimizer, _ = make_optimizer(model, fidelity, 1)
    config = _stacked(model.input_config, len(batches))
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with precision:
            logits = model.forward_stacked(config.normalise(stack_tasks([x for x, _ in batches])).contiguous())
            loss = sum(F.cross_entropy(out, y) for out, (_, y) in zip(logits, batches))
        loss.backward()  # type: ignore[union-attr]
        optimizer.step()

    return step


def profile_table(step, steps: int, device: str) -> str:  # type: ignore[no-untyped-def]
    """The operators of ``steps`` calls of ``step`` (after two untimed ones) that took the most
    device time (self time on the GPU on CUDA, on the CPU otherwise), as torch prints them."""
    from torch.profiler import ProfilerActivity, profile

    on_cuda = device.startswith("cuda")
    for _ in range(2):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if on_cuda:
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if on_cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=60)


if __name__ == "__main__":
    main()
