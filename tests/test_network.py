from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtlsearch.models import backbone_spec, build_model, strategy_allocation
from mtlsearch.models._layers import CpuMaxPool2d, TaskConv2d, TaskNorm


def _model(strategy: str = "bottom-specific", budget: float = 0.3):
    spec = backbone_spec("resnet18-narrow")
    allocation = strategy_allocation(strategy, spec, "block", budget)
    torch.manual_seed(0)
    return build_model("resnet18-narrow", num_classes=[10, 4, 6], allocation=allocation, granularity="block")


def _open_gradients(model) -> None:
    """timm zero-initialises a block's last norm, which stops gradients at initialisation."""
    with torch.no_grad():
        for norm in model.modules():
            if isinstance(norm, TaskNorm):
                norm.weight.fill_(1.0)


def test_forward_gives_each_task_its_own_classes() -> None:
    model = _model()
    x = torch.randn(2, 3, 28, 28)
    assert [model(x, t).shape[1] for t in range(3)] == [10, 4, 6]


def test_task_filters_get_gradients_only_from_their_task() -> None:
    model = _model()
    _open_gradients(model)
    x, y = torch.randn(4, 3, 28, 28), torch.tensor([0, 1, 2, 3])
    F.cross_entropy(model(x, 1), y).backward()
    convs = [m for m in model.modules() if isinstance(m, TaskConv2d)]
    specific = [m for m in convs if m.specific is not None]
    assert specific, "the allocation should make some filters task-specific"
    for conv in specific:
        grad = conv.specific.grad
        assert grad[1].abs().sum() > 0
        assert grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0
    shared = [m for m in convs if m.shared is not None]
    assert all(m.shared.grad is not None and m.shared.grad.abs().sum() > 0 for m in shared)


def test_shared_filters_get_gradients_from_every_task() -> None:
    model = _model()
    _open_gradients(model)
    conv = next(m for m in model.modules() if isinstance(m, TaskConv2d) and m.shared is not None)
    x, y = torch.randn(4, 3, 28, 28), torch.tensor([0, 1, 2, 3])
    grads = []
    for task in range(3):
        model.zero_grad()
        F.cross_entropy(model(x, task), y).backward()
        grads.append(conv.shared.grad.clone())
    assert all(g.abs().sum() > 0 for g in grads)
    assert not torch.equal(grads[0], grads[1])


def test_task_filters_start_as_copies_of_the_backbone() -> None:
    model = _model()
    conv = next(m for m in model.modules() if isinstance(m, TaskConv2d) and m.specific is not None)
    assert all(torch.equal(conv.specific[0], conv.specific[t]) for t in range(3))


def test_every_task_keeps_its_own_norm_statistics() -> None:
    model = _model("shared", 0.0)
    model.train()
    model(torch.randn(8, 3, 28, 28) * 5 + 3, 0)
    model(torch.randn(8, 3, 28, 28), 2)
    norm = next(m for m in model.modules() if isinstance(m, TaskNorm))
    means = norm.running_mean.clone()
    assert not torch.allclose(means[0], means[2])
    assert torch.equal(means[1], torch.zeros_like(means[1]))  # task 1 never ran


def test_independent_has_no_shared_conv_filters() -> None:
    model = _model("independent", 1.0)
    assert all(m.shared is None for m in model.modules() if isinstance(m, TaskConv2d))


@pytest.mark.parametrize(
    ("shape", "pool"),
    [
        ((4, 24, 28, 28), nn.MaxPool2d(3, 2, 1)),  # the narrow ResNet's stem, three tasks stacked
        ((2, 5, 18, 13), nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True)),  # ceil adds a row
        ((3, 6, 9, 9), nn.MaxPool2d(2)),  # stride None: the kernel's
    ],
)
def test_cpu_max_pool_gives_torchs_outputs_and_gradients_bit_for_bit(shape, pool) -> None:
    # after a ReLU most windows tie (zeros), and rounding makes positive ties too: the
    # channels-last forward must pick the element the NCHW backward scatters to
    x = torch.relu(torch.randn(shape, generator=torch.Generator().manual_seed(0))).round(decimals=1)
    mine, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = CpuMaxPool2d(pool)(mine)
    expected = pool(theirs)
    assert ours.is_contiguous() and torch.equal(ours, expected)
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    ours.backward(grad)
    expected.backward(grad)
    assert mine.grad.is_contiguous() and torch.equal(mine.grad, theirs.grad)
    channels_last = x.contiguous(memory_format=torch.channels_last)  # as when scoring: the ordinary path
    assert torch.equal(CpuMaxPool2d(pool)(channels_last), pool(channels_last))


def test_the_network_trains_with_the_cpu_max_pool_as_it_would_with_torchs() -> None:
    model = _model()
    assert isinstance(model.backbone.maxpool, CpuMaxPool2d)
    assert not any(type(m) is nn.MaxPool2d for m in model.modules())
    reference = copy.deepcopy(model)
    reference.backbone.maxpool = model.backbone.maxpool.torch_pool()
    _open_gradients(model)
    _open_gradients(reference)
    x = torch.randn(6, 3, 28, 28, generator=torch.Generator().manual_seed(2))
    for m in (model, reference):
        F.cross_entropy(m(x, 1), torch.arange(6) % 4).backward()
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        assert (a.grad is None) == (b.grad is None), name
        assert a.grad is None or torch.equal(a.grad, b.grad), name
