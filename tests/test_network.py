from __future__ import annotations

import torch
import torch.nn.functional as F

from mtlsearch.models import backbone_spec, build_model, strategy_allocation
from mtlsearch.models._layers import TaskConv2d, TaskNorm


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

