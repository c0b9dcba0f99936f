"""Layers with per-task state: a conv whose first filters belong to each task, per-task norms.

Both run one task (``state.task``) on an ordinary ``[N, C, H, W]`` batch, or every task at
once when ``state.stacked`` is set: then the batch holds the tasks side by side in its
channels, ``[N, tasks * C, H, W]`` (task ``t`` in channels ``t*C .. (t+1)*C``). In that
layout a conv is one grouped call (one group per task) and a norm one ``batch_norm`` over
``tasks * C`` channels, whatever the number of tasks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TaskState:
    """Which task the network is running, or all of them stacked; shared by every per-task
    layer of one network."""

    __slots__ = ("stacked", "task")

    def __init__(self) -> None:
        self.task = 0
        self.stacked = False


class TaskConv2d(nn.Module):
    """A conv layer whose first ``k`` output channels come from the running task's own filters.

    ``shared`` holds the ``out_channels - k`` filters every task uses, ``specific`` the ``k``
    filters of each task (shape ``[tasks, k, ...]``). Both start as copies of the source
    conv's filters. One task runs as one ``conv2d`` call over its concatenated weight; all
    tasks stacked run as one grouped ``conv2d`` over every task's weight. Either way a task's
    filters get gradients only from that task and shared filters from every task.
    """

    def __init__(self, conv: nn.Conv2d, *, tasks: int, k: int, state: TaskState) -> None:
        super().__init__()
        if not 0 <= k <= conv.out_channels:
            raise ValueError(f"k={k} is outside [0, {conv.out_channels}]")
        self.state = state
        self.tasks = tasks
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

    def _stack(self, specific: torch.Tensor | None, shared: torch.Tensor | None) -> torch.Tensor | None:
        """Every task's full weight, task after task: ``[tasks * out_channels, ...]``."""
        if specific is None and shared is None:
            return None
        if shared is not None:
            shared = shared.unsqueeze(0).expand(self.tasks, *shared.shape)  # a view: no copy
        full = shared if specific is None else specific if shared is None else torch.cat((specific, shared), dim=1)
        return full.reshape(self.tasks * self.out_channels, *full.shape[2:])  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.state.stacked:
            weight = self._stack(self.specific, self.shared)
            bias = self._stack(self.specific_bias, self.shared_bias)
            groups = self.groups * self.tasks
        else:
            weight = self._pick(self.specific, self.shared)
            bias = self._pick(self.specific_bias, self.shared_bias)
            groups = self.groups
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, task_specific={self.k}, groups={self.groups}"


NORM_STATE = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class TaskNorm(nn.Module):
    """A BatchNorm layer (and the activation timm fuses into it) with its own parameters and
    running statistics per task: row ``t`` of ``weight``, ``bias``, ``running_mean`` and
    ``running_var`` (each ``[tasks, C]``) is task ``t``'s. Stacked tasks normalise in one call.
    """

    def __init__(self, norm: nn.BatchNorm2d, *, tasks: int, state: TaskState) -> None:
        super().__init__()
        if not isinstance(norm, nn.BatchNorm2d) or type(norm).__name__ not in ("BatchNorm2d", "BatchNormAct2d"):
            raise ValueError(f"per-task norms support BatchNorm2d and timm's BatchNormAct2d, not {type(norm).__name__}")
        self.state = state
        self.tasks = tasks
        self.num_features = norm.num_features
        self.eps, self.momentum = norm.eps, norm.momentum
        self.track_running_stats = norm.track_running_stats

        def rows(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.detach().unsqueeze(0).repeat(tasks, *([1] * t.dim())).contiguous()

        weight, bias = rows(norm.weight), rows(norm.bias)
        self.weight = None if weight is None else nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.register_buffer("running_mean", rows(norm.running_mean))
        self.register_buffer("running_var", rows(norm.running_var))
        self.register_buffer("num_batches_tracked", rows(norm.num_batches_tracked))
        self.drop = getattr(norm, "drop", None) or nn.Identity()  # BatchNormAct2d's parts
        self.act = getattr(norm, "act", None) or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stacked, task = self.state.stacked, self.state.task

        def own(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.view(-1) if stacked else t[task]

        update = self.training and self.track_running_stats
        factor = 0.0 if self.momentum is None else self.momentum
        if update and self.num_batches_tracked is not None:
            counter = self.num_batches_tracked if stacked else self.num_batches_tracked[task]
            counter.add_(1)
            if self.momentum is None:  # a cumulative average (one task only: such a norm never stacks)
                factor = 1.0 / float(counter)
        use_batch = self.training or self.running_mean is None
        keep = not self.training or self.track_running_stats
        x = F.batch_norm(
            x,
            own(self.running_mean) if keep else None,
            own(self.running_var) if keep else None,
            own(self.weight),
            own(self.bias),
            use_batch,
            factor,
            self.eps,
        )
        return self.act(self.drop(x))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        # models saved before the rows were stacked hold one ``copies.<t>`` module per task
        for name in NORM_STATE:
            old = [f"{prefix}copies.{t}.{name}" for t in range(self.tasks)]
            if all(key in state_dict for key in old):
                state_dict[prefix + name] = torch.stack([state_dict.pop(key) for key in old])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, tasks={self.tasks}, eps={self.eps}, momentum={self.momentum}"


class _PoolChannelsLast(torch.autograd.Function):
    """Max-pooling of an NCHW tensor whose maxima are found in the channels-last layout and
    whose gradients are scattered back in NCHW, by the indices the forward found (both
    layouts' kernels pick the same element of every window, ties included)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, *pool: object) -> torch.Tensor:  # type: ignore[override]
        out, indices = torch.ops.aten.max_pool2d_with_indices(x.contiguous(memory_format=torch.channels_last), *pool)
        indices = indices.contiguous()
        ctx.save_for_backward(x, indices)
        ctx.pool = pool
        return out.contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, indices = ctx.saved_tensors
        return (torch.ops.aten.max_pool2d_with_indices_backward(grad.contiguous(), x, *ctx.pool, indices), *[None] * len(ctx.pool))


class CpuMaxPool2d(nn.Module):
    """``nn.MaxPool2d`` with the same outputs and gradients, faster on NCHW tensors on the CPU.

    PyTorch's CPU max-pool over the default layout takes about ten times as long as over
    channels-last (11 ms against 1 ms for the narrow ResNet's stem with eight tasks stacked,
    7% of a training step); its backward is fast in NCHW and slow channels-last. So the
    forward runs channels-last and the backward NCHW (``benchmarks/pool_speed.py``). Any other
    tensor (channels-last already, as when scoring, or on a GPU) takes the ordinary path.
    """

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        if pool.return_indices:
            raise ValueError("CpuMaxPool2d does not return indices")

        def pair(v: int | tuple[int, ...]) -> list[int]:
            return list(v) if isinstance(v, tuple | list) else [v, v]

        self.kernel_size, self.padding, self.dilation = pair(pool.kernel_size), pair(pool.padding), pair(pool.dilation)
        self.stride = pair(pool.stride) if pool.stride else self.kernel_size
        self.ceil_mode = pool.ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        if x.device.type == "cpu" and x.dim() == 4 and x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last):
            return _PoolChannelsLast.apply(x, *pool)
        return F.max_pool2d(x, *pool)

    def torch_pool(self) -> nn.MaxPool2d:
        """The ``nn.MaxPool2d`` this pool computes the same as."""
        return nn.MaxPool2d(self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode}"
