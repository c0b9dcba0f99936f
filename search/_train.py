"""Brief training of one candidate: every step takes one batch from every task."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mtlsearch._execution import Executor
from mtlsearch._settings import Fidelity, Settings
from mtlsearch.datasets import TrainAugment
from mtlsearch.errors import UsageError
from mtlsearch.models import InputConfig, input_config

if TYPE_CHECKING:
    import torch

    from mtlsearch.datasets import Task
    from mtlsearch.models import MultiDomainNet

StepCallback = Callable[[int, int], None]  # (steps done, steps in all)
Probe = Callable[[float], bool]  # mean val accuracy part-way -> stop this candidate?
PROBE_AT = 1 / 3  # where the early-stopping probe looks: this share of the training steps
# images per forward pass when scoring, by device type (benchmarks/score_speed.py)
SCORE_BATCH = {"cpu": 250, "cuda": 500}


@dataclass(frozen=True)
class TrainResult:
    task_accuracy: dict[str, float]
    train_seconds: float
    images_per_second: float
    probe_accuracy: float | None = None  # mean val accuracy at PROBE_AT of the steps, when probed
    stopped_at: int | None = None  # the step the probe stopped training at; None when trained to the end
    execution: str = "loop"  # how the steps ran their tasks: "loop" or "stacked"

    @property
    def accuracy(self) -> float:
        return sum(self.task_accuracy.values()) / len(self.task_accuracy)


def resolve_device(device: str) -> str:
    """``auto`` as this machine has it (CUDA when there is one, else the CPU); anything else
    checked: ``cpu``, ``cuda`` or ``cuda:N`` of a GPU this machine has (else ``UsageError``)."""
    import re

    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    found = re.fullmatch(r"cuda(?::(\d+))?", device)
    if found is None:
        raise UsageError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(found.group(1) or 0)
    if index >= count:
        have = f"{count} GPU{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})" if count else "no CUDA GPU"
        raise UsageError(f"device {device} is not on this machine, which has {have}: use --device auto or cpu")
    return device




def study_input(settings: Settings) -> InputConfig:
    """The input configuration of a study's models: its backbone's ImageNet normalisation when it
    starts from ImageNet weights (``pretrained``, or ``--weights``), the default otherwise."""
    return input_config(settings.backbone, size=settings.image_size, imagenet=settings.pretrained or settings.weights is not None)


def _stacked(config: InputConfig, tasks: int) -> InputConfig:
    """The configuration of ``tasks`` batches side by side in the channels (``stack_tasks``)."""
    import dataclasses

    return dataclasses.replace(config, mean=config.mean * tasks, std=config.std * tasks)


def fast_path(model: MultiDomainNet, device: str) -> contextlib.AbstractContextManager[object]:
    """On CUDA: channels-last weights, cuDNN autotuning, and bf16 autocast (the returned
    context); on the CPU, nothing (float32)."""
    import torch

    if not device.startswith("cuda"):
        return contextlib.nullcontext()
    torch.backends.cudnn.benchmark = True
    channels_last(model)
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)


def channels_last(model: torch.nn.Module) -> None:
    """Lay out the model's 4-D weights channels-last, in place. ``Module.to(memory_format=)``
    cannot: it also converts 5-D tensors and refuses them, and a task-specific filter bank is
    5-D (tasks x out x in x k x k)."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


def to_model_input(images: torch.Tensor, config: InputConfig, *, scoring: bool = False) -> torch.Tensor:
    """``uint8`` images normalised as ``config`` says, laid out channels-last on CUDA (where
    the weights are) and, for ``scoring`` (a forward pass without gradients), on the CPU too:
    oneDNN's forward over channels-last input runs the narrow ResNet's 20,000 validation images
    about 1.8x as fast (benchmarks/score_speed.py). Its backward is not faster, so training
    on the CPU keeps the default layout, as every cached result was trained."""
    import torch

    x = config.normalise(images)
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda or scoring else x


def train_step(
    model: MultiDomainNet,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    precision: contextlib.AbstractContextManager[object] | None = None,
    *,
    stacked: bool = False,
) -> torch.Tensor:
    """One optimisation step over one batch of every task; returns the summed loss, detached,
    on the device (reading it would wait for the GPU: the caller checks it once an epoch).

    Each task's batch runs through that task's model, one task after another, or with
    ``stacked`` all tasks in one pass (one call per layer; batches of one size); one backward
    over the summed loss. Both compute the same function.
    """
    import torch.nn.functional as F

    from mtlsearch.models import stack_tasks

    optimizer.zero_grad(set_to_none=True)
    with precision or contextlib.nullcontext():
        if stacked:
            logits = model.forward_stacked(to_model_input(stack_tasks([x for x, _ in batches]), _stacked(model.input_config, len(batches))))
            loss = sum(F.cross_entropy(out, y) for out, (_, y) in zip(logits, batches))
        else:
            loss = sum(F.cross_entropy(model(to_model_input(x, model.input_config), task), y) for task, (x, y) in enumerate(batches))
    loss.backward()  # type: ignore[union-attr]
    optimizer.step()
    return loss.detach()  # type: ignore[union-attr]


def make_optimizer(model: MultiDomainNet, fidelity: Fidelity, total_steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    import torch

    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=fidelity.lr,
        momentum=fidelity.momentum,
        nesterov=True,
        weight_decay=fidelity.weight_decay,
        foreach=True,  # one kernel per step over the many per-task tensors, on CPU too
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=fidelity.lr, total_steps=max(total_steps, 1), pct_start=0.15
    )
    return optimizer, scheduler


def evaluate(model: MultiDomainNet, tasks: Sequence[Task], *, split: str = "val", device: str = "cpu", batch_size: int | None = None) -> dict[str, float]:
    """Accuracy of every task on ``split``, each through its own norms, filters and head, in
    batches of ``batch_size`` images (by default ``SCORE_BATCH`` for the device)."""
    import torch

    size = batch_size or SCORE_BATCH.get(torch.device(device).type, SCORE_BATCH["cpu"])
    model.eval()
    accuracy = {}
    with torch.inference_mode(), fast_path(model, device):
        for index, task in enumerate(tasks):
            data = task.split(split)
            correct = torch.zeros((), dtype=torch.long, device=device)
            for start in range(0, len(data), size):
                x = torch.from_numpy(data.images[start : start + size]).to(device, non_blocking=True)
                y = torch.from_numpy(data.labels[start : start + size]).to(device, non_blocking=True)
                correct += (model(to_model_input(x, model.input_config, scoring=True), index).argmax(1) == y).sum()
            accuracy[task.name] = int(correct) / len(data)  # one read per task
    return accuracy


def warm_up_heads(
    model: MultiDomainNet, tasks: Sequence[Task], fidelity: Fidelity, *, device: str, generator: torch.Generator
) -> None:
    """Train each task's classifier alone on that task, the backbone frozen (its norms in eval
    mode), for ``fidelity.head_warmup_epochs``: the paper's classifier pre-training."""
    import torch
    import torch.nn.functional as F

    model.to(device).eval()
    for index, task in enumerate(tasks):
        head = model.heads[index]
        optimizer = torch.optim.SGD(head.parameters(), lr=fidelity.lr, momentum=fidelity.momentum, weight_decay=fidelity.weight_decay)
        images = torch.from_numpy(task.train.images).to(device)
        labels = torch.from_numpy(task.train.labels).to(device)
        for _ in range(fidelity.head_warmup_epochs):
            order = torch.randperm(len(labels), generator=generator).to(device)
            for start in range(0, len(order), fidelity.batch_size):
                idx = order[start : start + fidelity.batch_size]
                with torch.no_grad():
                    model.state.task = index
                    features = model.backbone(model.input_config.normalise(images[idx]))
                loss = F.cross_entropy(head(features), labels[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()


def _spare_steps(
    model: MultiDomainNet, fidelity: Fidelity, total_steps: int, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    precision: contextlib.AbstractContextManager[object] | None,
) -> Callable[[bool], object]:  # fmt: skip
    """Training steps on a copy of ``model`` and an optimizer of its own, on fixed ``batches``:
    what ``auto`` times, leaving the model itself as it was."""
    import copy

    spare = copy.deepcopy(model)
    optimizer, _ = make_optimizer(spare, fidelity, total_steps)
    return lambda stacked: train_step(spare, optimizer, batches, precision, stacked=stacked)


def train_candidate(
    model: MultiDomainNet,
    tasks: Sequence[Task],
    fidelity: Fidelity,
    *,
    device: str,
    seed: int,
    on_step: StepCallback | None = None,
    probe: Probe | None = None,
    execution: str = "auto",
    verdicts: dict[tuple[object, ...], bool] | None = None,
    augment: TrainAugment | None = None,
) -> TrainResult:
    """Train ``model`` on every task at once for ``fidelity.epochs`` (after the optional head
    warm-up), then evaluate on val. ``execution`` says how each step runs the tasks
    (``Executor``); with ``auto``, ``verdicts`` keeps what timing found for the next training
    of the same kind (the caller owns it: a worker keeps one for all its candidates). With
    ``augment``, every training batch is cropped and flipped where it lies (on the device),
    with draws from the training seed's generator.

    With ``probe``, the mean val accuracy after ``PROBE_AT`` of the steps is measured and handed
    to it; when it answers True training stops there, and the result's ``task_accuracy`` is
    the accuracy at that point (``stopped_at`` says so)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    if fidelity.head_warmup_epochs:
        warm_up_heads(model, tasks, fidelity, device=device, generator=generator)
    model.to(device).train()
    # the training images live on the device: a batch is an index, not a copy from the host
    images = [torch.from_numpy(t.train.images).to(device) for t in tasks]
    labels = [torch.from_numpy(t.train.labels).to(device) for t in tasks]
    sizes = [len(y) for y in labels]
    batch = min(fidelity.batch_size, min(sizes))
    steps_per_epoch = math.ceil(max(sizes) / batch)
    total_steps = steps_per_epoch * fidelity.epochs
    optimizer, scheduler = make_optimizer(model, fidelity, total_steps)
    orders = [torch.empty(0, dtype=torch.long)] * len(tasks)
    cursors = list(sizes)  # a cursor at the end reshuffles that task before its next batch

    def next_batch(task: int) -> tuple[torch.Tensor, torch.Tensor]:
        if cursors[task] + batch > sizes[task]:  # reshuffle; smaller tasks cycle
            orders[task] = torch.randperm(sizes[task], generator=generator)
            cursors[task] = 0
        idx = orders[task][cursors[task] : cursors[task] + batch].to(device)
        cursors[task] += batch
        chosen = images[task][idx]
        return (chosen if augment is None else augment(chosen, generator)), labels[task][idx]

    shapes = {t.train.images.shape[1:] for t in tasks}
    blocker = model.stack_blocker or (f"their images differ in shape: {sorted(shapes)}" if len(shapes) > 1 else None)
    executor = Executor(execution, blocker, (model.name, len(tasks), tuple(shapes), batch, device), total_steps, verdicts)
    precision = fast_path(model, device)
    if executor.pending:
        with torch.random.fork_rng(devices=[torch.device(device)] if device.startswith("cuda") else []):  # the training's draws untouched
            executor.decide(_spare_steps(model, fidelity, total_steps, [(x[:batch], y[:batch]) for x, y in zip(images, labels)], precision), device)
    finite = torch.ones((), dtype=torch.bool, device=device)
    probe_step = max(1, round(total_steps * PROBE_AT)) if probe is not None else -1
    probe_accuracy = None
    started = time.perf_counter()
    for step in range(total_steps):
        if step % steps_per_epoch == 0:  # every epoch starts each task afresh
            cursors[:] = sizes
        loss = train_step(model, optimizer, [next_batch(t) for t in range(len(tasks))], precision, stacked=executor.stacked)
        finite &= torch.isfinite(loss)
        if (step + 1) % steps_per_epoch == 0 or step + 1 == total_steps:  # one host read an epoch
            if not bool(finite):
                raise FloatingPointError(f"training diverged in epoch {step // steps_per_epoch + 1} (a non-finite loss)")
        scheduler.step()
        if on_step is not None:
            on_step(step + 1, total_steps)
        if step + 1 == probe_step and probe is not None:
            at_probe = evaluate(model, tasks, device=device)
            model.train()
            probe_accuracy = sum(at_probe.values()) / len(at_probe)
            if probe(probe_accuracy):
                seconds = time.perf_counter() - started
                images = probe_step * batch * len(tasks)
                return TrainResult(at_probe, seconds, images / max(seconds, 1e-9), probe_accuracy, probe_step, executor.name)
    seconds = time.perf_counter() - started
    accuracy = evaluate(model, tasks, device=device)
    trained_images = total_steps * batch * len(tasks)
    return TrainResult(accuracy, seconds, trained_images / max(seconds, 1e-9), probe_accuracy, execution=executor.name)


def train_allocation(
    allocation: dict[str, float],
    settings: Settings,
    tasks: Sequence[Task],
    *,
    device: str,
    seed: int | None = None,
    epochs: int | None = None,
    on_step: StepCallback | None = None,
    probe: Probe | None = None,
    execution: str | None = None,
    verdicts: dict[tuple[object, ...], bool] | None = None,
) -> tuple[MultiDomainNet, TrainResult]:
    """The one build-and-train recipe (the worker, ``--repeats``, ``train`` and the benchmarks
    all use it): the multi-domain model of ``allocation`` over the study's backbone, built from
    the same seeded initialisation as every other candidate (its checkpoint or ImageNet weights
    when the study has them), trained at the study's fidelity (``epochs`` overrides its epochs),
    its steps run the study's way (``settings.execution``) unless ``execution`` names another."""
    import dataclasses
    from pathlib import Path

    import torch

    from mtlsearch.models import build_model

    seed = settings.seed if seed is None else seed
    torch.manual_seed(seed)  # every candidate starts from the same backbone
    model = build_model(
        settings.backbone,
        num_classes=[t.num_classes for t in tasks],
        allocation=allocation,
        granularity=settings.granularity,  # type: ignore[arg-type]
        pretrained=settings.pretrained,
        weights=Path(settings.weights) if settings.weights else None,
        input_config=study_input(settings),
        task_names=[t.name for t in tasks],
    )
    fidelity = settings.fidelity if epochs is None else dataclasses.replace(settings.fidelity, epochs=epochs)
    result = train_candidate(
        model, tasks, fidelity, device=device, seed=seed, on_step=on_step, probe=probe, execution=settings.execution if execution is None else execution, verdicts=verdicts,
        augment=TrainAugment() if settings.augment else None,
    )
    return model, result
