"""Brief training of one candidate: every step takes one batch from every task."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from mtlsearch.datasets import Task
    from mtlsearch.models import MultiDomainNet

StepCallback = Callable[[int, int], None]  # (steps done, steps in all)

MEAN, STD = 0.5, 0.25


@dataclass(frozen=True)
class Fidelity:
    """How briefly each candidate is trained; fixed for a whole study."""

    epochs: int = 5
    train_size: int = 1000  # training images per task, at most
    batch_size: int = 64  # per task and step
    lr: float = 0.2
    weight_decay: float = 5e-4
    momentum: float = 0.9
    head_warmup_epochs: int = 0  # epochs of each task's classifier alone, on frozen features, first


@dataclass(frozen=True)
class TrainResult:
    task_accuracy: dict[str, float]
    train_seconds: float
    images_per_second: float

    @property
    def accuracy(self) -> float:
        return sum(self.task_accuracy.values()) / len(self.task_accuracy)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def to_input(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` images to normalised floats."""
    return (images.float() / 255.0 - MEAN) / STD


def train_step(
    model: MultiDomainNet,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> float:
    """One optimisation step over one batch of every task; returns the summed loss.

    Each task's batch runs through that task's model; one backward over the summed loss.
    """
    import torch.nn.functional as F

    optimizer.zero_grad(set_to_none=True)
    loss = sum(F.cross_entropy(model(to_input(x), task), y) for task, (x, y) in enumerate(batches))
    loss.backward()  # type: ignore[union-attr]
    optimizer.step()
    return float(loss.detach())  # type: ignore[union-attr]


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


def evaluate(model: MultiDomainNet, tasks: Sequence[Task], *, split: str = "val", device: str = "cpu", batch_size: int = 500) -> dict[str, float]:
    """Accuracy of every task on ``split``, each through its own norms, filters and head."""
    import torch

    model.eval()
    accuracy = {}
    with torch.inference_mode():
        for index, task in enumerate(tasks):
            data = task.split(split)
            correct = 0
            for start in range(0, len(data), batch_size):
                x = torch.from_numpy(data.images[start : start + batch_size]).to(device)
                y = torch.from_numpy(data.labels[start : start + batch_size]).to(device)
                correct += int((model(to_input(x), index).argmax(1) == y).sum())
            accuracy[task.name] = correct / len(data)
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
                    features = model.backbone(to_input(images[idx]))
                loss = F.cross_entropy(head(features), labels[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()


def train_candidate(
    model: MultiDomainNet,
    tasks: Sequence[Task],
    fidelity: Fidelity,
    *,
    device: str,
    seed: int,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train ``model`` on every task at once for ``fidelity.epochs`` (after the optional head
    warm-up), then evaluate on val."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    if fidelity.head_warmup_epochs:
        warm_up_heads(model, tasks, fidelity, device=device, generator=generator)
    model.to(device).train()
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
        return images[task][idx], labels[task][idx]

    started = time.perf_counter()
    for step in range(total_steps):
        if step % steps_per_epoch == 0:  # every epoch starts each task afresh
            cursors[:] = sizes
        loss = train_step(model, optimizer, [next_batch(t) for t in range(len(tasks))])
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {step} (loss {loss})")
        scheduler.step()
        if on_step is not None:
            on_step(step + 1, total_steps)
    seconds = time.perf_counter() - started
    accuracy = evaluate(model, tasks, device=device)
    trained_images = total_steps * batch * len(tasks)
    return TrainResult(accuracy, seconds, trained_images / max(seconds, 1e-9))
