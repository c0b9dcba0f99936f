"""The multi-domain network: one timm backbone, per-task norms, heads and filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mtlsearch.models._accounting import check_allocation, specific_filters
from mtlsearch.models._layers import TaskConv2d, TaskNorm, TaskState
from mtlsearch.models._registry import get_backbone
from mtlsearch.models._spec import Granularity, spec_from_model
from mtlsearch.models._weights import load_backbone_weights


class MultiDomainNet(nn.Module):
    """A backbone shared by several tasks; ``forward(x, task)`` runs one task's model.

    Every normalisation layer and classifier is per task; in each conv layer the fraction of
    filters given by the allocation of its unit is per task as well (DESIGN.md).
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        name: str,
        num_classes: Sequence[int],
        allocation: Mapping[str, float],
        granularity: Granularity,
    ) -> None:
        super().__init__()
        spec = spec_from_model(name, backbone)
        check_allocation(spec, allocation, granularity)
        tasks = len(num_classes)
        self.state = TaskState()
        self.num_classes = tuple(num_classes)
        by_name = {c.name: c for c in spec.convs}
        for module_name, module in list(backbone.named_modules()):
            if module_name in by_name:
                conv = by_name[module_name]
                k = specific_filters(conv, allocation.get(conv.unit(granularity), 0.0))
                replacement: nn.Module = TaskConv2d(module, tasks=tasks, k=k, state=self.state)  # type: ignore[arg-type]
            elif isinstance(module, _BatchNorm):
                replacement = TaskNorm(module, tasks=tasks, state=self.state)
            else:
                continue
            backbone.set_submodule(module_name, replacement)
        self.backbone = backbone
        self.heads = nn.ModuleList(nn.Linear(spec.num_features, c) for c in num_classes)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        self.state.task = task
        return self.heads[task](self.backbone(x))


def build_model(
    backbone: str,
    *,
    num_classes: Sequence[int],
    allocation: Mapping[str, float],
    granularity: Granularity,
    pretrained: bool = False,
    weights: Path | None = None,
    in_chans: int = 3,
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
    )
