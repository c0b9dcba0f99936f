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
from mtlsearch._train import MEAN, STD, evaluate, train_candidate
from mtlsearch.errors import UsageError
from mtlsearch.models import Candidate

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
) -> FullResult:
    """Train ``candidate`` on all of every task's training images for ``epochs``; evaluate it
    on val and test; return the model and its card."""
    import torch

    from mtlsearch.models import build_model

    torch.manual_seed(settings.seed)
    model = build_model(
        settings.backbone, num_classes=[t.num_classes for t in tasks], allocation=candidate.allocation_dict,
        granularity=settings.granularity, weights=weights, pretrained=settings.pretrained,  # type: ignore[arg-type]
    )  # fmt: skip
    fidelity = dataclasses.replace(settings.fidelity, epochs=epochs)
    log(f"training {candidate.strategy} ({candidate.specific_fraction:.4f} task-specific, {candidate.counts.total:,} parameters) "
        f"for {epochs} epochs on {', '.join(f'{t.name} ({len(t.train)} images)' for t in tasks)} on {device}")  # fmt: skip
    started = time.perf_counter()
    result = train_candidate(model, tasks, fidelity, device=device, seed=settings.seed, on_step=on_step)
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
        "input": {"scale": 1 / 255, "mean": MEAN, "std": STD, "channels": 3},
        "tasks": [{"name": t.name, "classes": list(t.classes)} for t in tasks],
        "strategy": candidate.strategy,
        "allocation": candidate.allocation_dict,
        "specific_fraction": candidate.specific_fraction,
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
    out.mkdir(parents=True, exist_ok=True)
    save_model(result.model.cpu(), str(out / WEIGHTS))  # shared tensors (task copies) stored once
    (out / CARD).write_text(json.dumps(result.card, indent=2) + "\n", encoding="utf-8")
    (out / LOG).write_text("\n".join(log_lines) + "\n", encoding="utf-8")
    return out


def load_trained(folder: str | Path, *, device: str = "cpu") -> tuple[MultiDomainNet, dict[str, Any]]:
    """The model saved by ``mtlsearch train`` (in eval mode) and its card.

    ``model(x, task)`` takes images as floats normalised as ``card["input"]`` says, or use
    ``predict``.
    """
    from safetensors.torch import load_model

    from mtlsearch.models import build_model

    folder = Path(folder)
    if not (folder / CARD).is_file() or not (folder / WEIGHTS).is_file():
        raise UsageError(f"{folder} is not a model saved by 'mtlsearch train': it needs {CARD} and {WEIGHTS}")
    card = json.loads((folder / CARD).read_text(encoding="utf-8"))
    model = build_model(
        card["backbone"], num_classes=[len(t["classes"]) for t in card["tasks"]],
        allocation=card["allocation"], granularity=card["granularity"],
    )  # fmt: skip
    load_model(model, str(folder / WEIGHTS), strict=True)
    return model.to(device).eval(), card


def predict(model: MultiDomainNet, images: torch.Tensor, task: int) -> torch.Tensor:
    """Class indices for ``uint8`` images ``[N, 3, H, W]`` of task number ``task``."""
    import torch

    from mtlsearch._train import to_input

    with torch.inference_mode():
        device = next(model.parameters()).device
        return model(to_input(images.to(device)), task).argmax(1)
