"""The multi-domain network: one timm backbone, per-task norms, heads and filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mtlsearch.models._accounting import check_allocation, specific_filters
from mtlsearch.models._input import DEFAULT, InputConfig
from mtlsearch.models._layers import CpuMaxPool2d, TaskConv2d, TaskNorm, TaskState
from mtlsearch.models._registry import get_backbone
from mtlsearch.models._spec import Granularity, spec_from_model
from mtlsearch.models._weights import load_backbone_weights


class MultiDomainNet(nn.Module):
    """A backbone shared by several tasks; ``forward(x, task)`` runs one task's model.

    Every normalisation layer and classifier is per task; in each conv layer the fraction of
    filters given by the allocation of its unit is per task as well (DESIGN.md).

    ``forward_stacked(x)`` runs every task at once on images stacked in the channels
    (``stack_tasks``): each conv and norm layer is one call for all tasks instead of one per
    task. It needs a backbone made only of per-task convs and norms and layers that act on
    each channel alone (``stack_blocker`` names the first module that is not).
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        name: str,
        num_classes: Sequence[int],
        allocation: Mapping[str, float],
        granularity: Granularity,
        input_config: InputConfig = DEFAULT,
        task_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if task_names is not None and len(task_names) != len(num_classes):
            raise ValueError(f"{len(task_names)} task names for {len(num_classes)} tasks")
        self.input_config = input_config  # what its images must look like (mean, std, size): training, evaluation and predict read it
        self.task_names = tuple(task_names) if task_names is not None else tuple(f"task{i}" for i in range(len(num_classes)))
        spec = spec_from_model(name, backbone)
        check_allocation(spec, allocation, granularity)
        tasks = len(num_classes)
        self.name = name
        self.state = TaskState()
        self.num_classes = tuple(num_classes)
        by_name = {c.name: c for c in spec.convs}
        for module_name, module in list(backbone.named_modules()):
            if module_name in by_name:
                conv = by_name[module_name]
                k = specific_filters(conv, allocation.get(conv.unit(granularity), 0.0))
                replacement: nn.Module = TaskConv2d(module, tasks=tasks, k=k, state=self.state)  # type: ignore[arg-type]
            elif isinstance(module, _BatchNorm):
                replacement = TaskNorm(module, tasks=tasks, state=self.state)  # type: ignore[arg-type]
            elif type(module) is nn.MaxPool2d and not module.return_indices:
                replacement = CpuMaxPool2d(module)
            else:
                continue
            backbone.set_submodule(module_name, replacement)
        self.backbone = backbone
        self.heads = nn.ModuleList(nn.Linear(spec.num_features, c) for c in num_classes)
        self.stack_blocker = _stack_blocker(backbone)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        self.state.task = task
        return self.heads[task](self.backbone(x))

    def forward_stacked(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every task's logits from one pass over ``x = stack_tasks([x_0, x_1, ...])``."""
        if self.stack_blocker is not None:
            raise ValueError(f"this backbone cannot run its tasks stacked: {self.stack_blocker}")
        tasks = len(self.heads)
        if x.dim() != 4 or x.shape[1] % tasks:
            raise ValueError(f"expected [N, {tasks} x channels, H, W] images, got {list(x.shape)}")
        self.state.stacked = True
        try:
            features = self.backbone(x)
        finally:
            self.state.stacked = False
        features = features.view(features.shape[0], tasks, -1)
        return [head(features[:, task]) for task, head in enumerate(self.heads)]


def stack_tasks(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """One batch per task, the same size each, as one batch with the tasks side by side in
    its channels: ``[N, tasks * C, H, W]``, the input of ``MultiDomainNet.forward_stacked``."""
    if len({tuple(x.shape) for x in images}) != 1:
        raise ValueError(f"stacked tasks need batches of one shape, got {[list(x.shape) for x in images]}")
    return torch.cat(tuple(images), dim=1)


def _stack_blocker(backbone: nn.Module) -> str | None:
    """Why ``backbone`` cannot run stacked tasks, or None: a module other than the per-task
    layers that holds parameters or buffers mixes channels across tasks; a cumulative-average
    norm needs one batch count for all tasks."""
    for name, module in backbone.named_modules():
        if isinstance(module, TaskNorm) and module.momentum is None:
            return f"{name} keeps a cumulative average (momentum None)"
        if isinstance(module, (TaskConv2d, TaskNorm)):
            continue
        if any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
            return f"{name} ({type(module).__name__}) has weights that are not per task"
    return None


def build_model(
    backbone: str,
    *,
    num_classes: Sequence[int],
    allocation: Mapping[str, float],
    granularity: Granularity,
    pretrained: bool = False,
    weights: Path | None = None,
    in_chans: int = 3,
    input_config: InputConfig = DEFAULT,
    task_names: Sequence[str] | None = None,
) -> MultiDomainNet:
    """A multi-domain network over a registered backbone; task filters copy the backbone's.

    ``pretrained`` takes timm's ImageNet weights (downloaded by timm); ``weights`` a local
    checkpoint (safetensors or a state dict). Either is loaded before the split, so every
    task's own filters, norms and statistics start from them.
    """
    model = get_backbone(backbone).create(pretrained=pretrained and weights is None, in_chans=in_chans)
    if weights is not None:
        load_backbone_weights(model, weights)
    return MultiDomainNet(
        model,
        name=backbone,
        num_classes=num_classes,
        allocation=allocation,
        granularity=granularity,
        input_config=input_config,
        task_names=task_names,
    )
