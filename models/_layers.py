"""Layers with per-task state: a conv whose first filters belong to each task, per-task norms."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class TaskState:
    """Which task the network is running; shared by every per-task layer of one network."""

    __slots__ = ("task",)

    def __init__(self) -> None:
        self.task = 0


class TaskConv2d(nn.Module):
    """A conv layer whose first ``k`` output channels come from the running task's own filters.

    ``shared`` holds the ``out_channels - k`` filters every task uses, ``specific`` the ``k``
    filters of each task (shape ``[tasks, k, ...]``). Both start as copies of the source
    conv's filters. The forward pass is one ``conv2d`` call over the concatenated weight, so a
    task's filters get gradients only from that task and shared filters from every task.
    """

    def __init__(self, conv: nn.Conv2d, *, tasks: int, k: int, state: TaskState) -> None:
        super().__init__()
        if not 0 <= k <= conv.out_channels:
            raise ValueError(f"k={k} is outside [0, {conv.out_channels}]")
        self.state = state
        self.k = k
        self.out_channels = conv.out_channels
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        weight, bias = conv.weight.detach(), conv.bias

        def per_task(t: torch.Tensor) -> nn.Parameter:
            return nn.Parameter(t.unsqueeze(0).repeat(tasks, *([1] * t.dim())).contiguous())

        self.shared = nn.Parameter(weight[k:].clone()) if k < conv.out_channels else None
        self.specific = per_task(weight[:k]) if k > 0 else None
        has_bias = bias is not None
        self.shared_bias = nn.Parameter(bias.detach()[k:].clone()) if has_bias and self.shared is not None else None  # type: ignore[union-attr]
        self.specific_bias = per_task(bias.detach()[:k]) if has_bias and k > 0 else None  # type: ignore[union-attr]

    def _pick(self, specific: torch.Tensor | None, shared: torch.Tensor | None) -> torch.Tensor | None:
        if specific is None:
            return shared
        own = specific[self.state.task]
        return own if shared is None else torch.cat((own, shared))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self._pick(self.specific, self.shared)
        bias = self._pick(self.specific_bias, self.shared_bias)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, task_specific={self.k}, groups={self.groups}"


class TaskNorm(nn.Module):
    """One copy of a normalisation layer (parameters and running statistics) per task."""

    def __init__(self, norm: nn.Module, *, tasks: int, state: TaskState) -> None:
        super().__init__()
        self.state = state
        self.copies = nn.ModuleList(copy.deepcopy(norm) for _ in range(tasks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.copies[self.state.task](x)
