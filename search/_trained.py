"""Full training of one candidate, and the saved model: weights, card, log; and reloading it.

A saved model is a folder: ``model.safetensors`` (the multi-domain network's state dict),
``card.json`` (everything needed to rebuild it, and what it scored) and ``train.log``.
``load_trained(folder)`` rebuilds the network from the card and loads the weights.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtlsearch._settings import Settings
from mtlsearch._train import evaluate, to_model_input, train_allocation
from mtlsearch.datasets import eval_transform
from mtlsearch.errors import UsageError, writing
from mtlsearch.models import Candidate, InputConfig

if TYPE_CHECKING:
    import torch

    from mtlsearch.datasets import Task
    from mtlsearch.models import MultiDomainNet

CARD, WEIGHTS, LOG = "card.json", "model.safetensors", "train.log"
CARD_FORMAT = 1


@dataclass(frozen=True)
class FullResult:
    model: MultiDomainNet
    card: dict[str, Any]


def train_full(
    candidate: Candidate,
    settings: Settings,
    tasks: Sequence[Task],
    *,
    epochs: int,
    device: str,
    weights: Path | None = None,
    source: dict[str, Any] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = lambda line: None,
    execution: str | None = None,
) -> FullResult:
    """Train ``candidate`` on all of every task's training images for ``epochs``; evaluate it
    on val and test; return the model and its card."""
    settings = dataclasses.replace(settings, weights=str(weights) if weights else None)
    log(f"training {candidate.strategy} ({candidate.specific_fraction:.4f} task-specific, {candidate.counts.total:,} parameters) "
        f"for {epochs} epochs on {', '.join(f'{t.name} ({len(t.train)} images)' for t in tasks)} on {device}")  # fmt: skip
    started = time.perf_counter()
    model, result = train_allocation(candidate.allocation_dict, settings, tasks, device=device, epochs=epochs, on_step=on_step, execution=execution)
    test = evaluate(model, tasks, split="test", device=device)
    log(f"trained in {result.train_seconds:.1f} s ({result.images_per_second:.0f} images/s, tasks run {result.execution})")
    for task in tasks:
        log(f"{task.name}: val {result.task_accuracy[task.name]:.4f}  test {test[task.name]:.4f}")
    counts = candidate.counts
    card = {
        "format": CARD_FORMAT,
        "backbone": settings.backbone,
        "granularity": settings.granularity,
        "image_size": settings.image_size,
        "input": {"scale": 1 / 255, **model.input_config.to_dict(), "channels": model.input_config.channels},
        "tasks": [{"name": t.name, "classes": list(t.classes)} for t in tasks],
        "strategy": candidate.strategy,
        "allocation": candidate.allocation_dict,
        "specific_fraction": candidate.specific_fraction,
        "budget": settings.budget,
        "over_budget": candidate.violation(settings.budget) > 1e-12,
        "params": {"total": counts.total, "shared": counts.shared, "specific_conv_per_task": counts.specific_conv,
                   "norms": counts.norms, "heads": counts.heads},  # fmt: skip
        "val_accuracy": result.task_accuracy,
        "test_accuracy": test,
        "mean_val_accuracy": result.accuracy,
        "mean_test_accuracy": sum(test.values()) / len(test),
        "epochs": epochs,
        "train_images": {t.name: len(t.train) for t in tasks},
        "train_seconds": time.perf_counter() - started,
        "execution": result.execution,
        "seed": settings.seed,
        "weights": str(weights) if weights else None,
        "source": source or {},
        "settings": settings.to_dict(),
    }
    return FullResult(model, card)


def save_trained(result: FullResult, out: Path, log_lines: Sequence[str]) -> Path:
    from safetensors.torch import save_model

    out = Path(out)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
        save_model(result.model.cpu(), str(out / WEIGHTS))  # shared tensors (task copies) stored once
        (out / CARD).write_text(json.dumps(result.card, indent=2) + "\n", encoding="utf-8")
        (out / LOG).write_text("\n".join(log_lines) + "\n", encoding="utf-8")
    return out


def load_trained(folder: str | Path, *, device: str = "cpu") -> tuple[MultiDomainNet, dict[str, Any]]:
    """The model saved by ``mtlsearch train`` (in eval mode, carrying its task names and input
    configuration) and its card. ``predict(model, images, task)`` takes images as they come."""
    from safetensors.torch import load_model

    from mtlsearch.models import build_model

    folder = Path(folder)
    if not (folder / CARD).is_file() or not (folder / WEIGHTS).is_file():
        raise UsageError(f"{folder} is not a model saved by 'mtlsearch train': it needs {CARD} and {WEIGHTS}")
    card = json.loads((folder / CARD).read_text(encoding="utf-8"))
    model = build_model(
        card["backbone"], num_classes=[len(t["classes"]) for t in card["tasks"]], allocation=card["allocation"],
        granularity=card["granularity"], input_config=card_input(card), task_names=[t["name"] for t in card["tasks"]],
    )  # fmt: skip
    load_model(model, str(folder / WEIGHTS), strict=True)
    return model.to(device).eval(), card


def card_input(card: dict[str, Any]) -> InputConfig:
    """The input configuration a card records (cards from before it held one: the default
    normalisation, at the card's image size)."""
    given = dict(card.get("input") or {})
    channels = int(given.get("channels", 3))
    for key in ("mean", "std"):
        if key in given and not isinstance(given[key], (list, tuple)):
            given[key] = [given[key]] * channels
    return InputConfig.from_dict({"size": card["image_size"], **given})


def predict(model: MultiDomainNet, images: Any, task: int | str) -> torch.Tensor:
    """Class indices for the images of one task (``task``: its name or its number).

    ``images``: a tensor or array ``[N, C, H, W]`` (or ``[N, H, W]``, grey): ``uint8`` in
    [0, 255], or floats in [0, 1]. One grey channel is repeated to the model's channels; any
    size goes through the model's eval transform (the shorter side resized, the centre cut to
    its input size). Anything else is a ``UsageError`` saying what to pass."""
    import torch

    index = _task_index(model, task)
    config: InputConfig = model.input_config
    x = _as_uint8(images, config)
    x = eval_transform(x, size=config.size, crop_pct=config.crop_pct, interpolation=config.interpolation)
    with torch.inference_mode():
        device = next(model.parameters()).device
        return model(to_model_input(x.to(device), config, scoring=True), index).argmax(1).cpu()


def _task_index(model: MultiDomainNet, task: int | str) -> int:
    names = list(model.task_names)
    if isinstance(task, str):
        if task not in names:
            raise UsageError(f"task {task!r} is not one of this model's tasks ({', '.join(names)}): pass one of those names or its number")
        return names.index(task)
    if isinstance(task, bool) or not isinstance(task, int) or not 0 <= task < len(names):
        raise UsageError(f"task {task!r} is not a task of this model: pass a name ({', '.join(names)}) or a number from 0 to {len(names) - 1}")
    return task


def _as_uint8(images: Any, config: InputConfig) -> torch.Tensor:
    """``images`` as a ``uint8`` tensor ``[N, channels, H, W]``, or a ``UsageError``."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.asarray(images)) if not isinstance(images, torch.Tensor) else images.detach().cpu()
    if x.dim() == 3:  # [N, H, W]: grey
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise UsageError(f"images have shape {list(x.shape)}: pass a batch [N, C, H, W] (or [N, H, W] for grey images)")
    if x.shape[1] not in (1, config.channels):
        hint = " (channels last? use images.permute(0, 3, 1, 2))" if x.shape[-1] in (1, config.channels) else ""
        raise UsageError(f"images have {x.shape[1]} channels, the model takes {config.channels} (or 1, repeated){hint}")
    if x.shape[0] == 0 or min(x.shape[-2:]) < 1:
        raise UsageError(f"images have shape {list(x.shape)}: pass at least one image")
    if x.dtype == torch.uint8:
        pass
    elif x.is_floating_point():
        low, high = float(x.min()), float(x.max())
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
            raise UsageError(f"float images must lie in [0, 1], these span [{low:g}, {high:g}]: pass uint8 images, or divide by 255")
        x = (x * 255.0).round().to(torch.uint8)
    else:
        raise UsageError(f"images are {str(x.dtype).removeprefix('torch.')}: pass uint8 images in [0, 255] or floats in [0, 1]")
    if x.shape[1] == 1 and config.channels != 1:
        x = x.expand(-1, config.channels, -1, -1)
    return x.contiguous()
