from __future__ import annotations

import pytest
import torch

from mtlsearch.errors import UsageError
from mtlsearch.models import (
    BACKBONES,
    GRANULARITIES,
    STRATEGIES,
    Candidate,
    backbone_spec,
    build_model,
    count_params,
    get_backbone,
    specific_filters,
    strategy_allocation,
)

NUM_CLASSES = [10, 4, 7]


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_accounting_equals_built_model(backbone: str, strategy: str) -> None:
    spec = backbone_spec(backbone)
    allocation = strategy_allocation(strategy, spec, "block", 0.2, seed=3)
    counts = count_params(spec, NUM_CLASSES, allocation, "block")
    with torch.device("meta"):  # real modules and shapes, no memory
        model = build_model(backbone, num_classes=NUM_CLASSES, allocation=allocation, granularity="block")
    assert counts.total == sum(p.numel() for p in model.parameters())
    owned = sum(p.numel() for n, p in model.named_parameters() if n.endswith("specific")) // len(NUM_CLASSES)
    assert counts.specific_conv == owned


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_accounting_every_granularity_on_a_real_build(granularity: str) -> None:
    spec = backbone_spec("mobilenetv2_100")
    allocation = strategy_allocation("random", spec, granularity, 0.3, seed=1)
    model = build_model("mobilenetv2_100", num_classes=[3, 5], allocation=allocation, granularity=granularity)
    assert count_params(spec, [3, 5], allocation, granularity).total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("backbone", ["resnet18-narrow", "resnet50", "mobilenetv2_100"])
@pytest.mark.parametrize("strategy", ["bottom-specific", "top-specific", "random"])
@pytest.mark.parametrize("budget", [0.05, 0.1, 0.2, 0.5])
def test_strategies_fill_the_budget_to_within_one_filter_per_unit(backbone: str, strategy: str, budget: float) -> None:
    spec = backbone_spec(backbone)
    allocation = strategy_allocation(strategy, spec, "block", budget, seed=0)
    candidate = Candidate.create(spec, [10], allocation, "block", strategy=strategy)
    assert candidate.specific_fraction <= budget
    # the shortfall is less than one more filter in every conv of the partly filled unit
    partial = [u for u, f in allocation.items() if 0 < f < 1]
    assert len(partial) <= 1
    slack = sum(c.weights_per_filter for u in partial for c in spec.unit_convs("block")[u])
    if not partial:  # the next unit in line could not take a single filter
        slack = max(c.weights_per_filter for c in spec.convs)
    assert budget * spec.conv_params - candidate.counts.specific_conv <= slack


def test_bottom_and_top_fill_from_opposite_sides() -> None:
    spec = backbone_spec("resnet18-narrow")
    units = spec.units("block")
    bottom = strategy_allocation("bottom-specific", spec, "block", 0.1)
    top = strategy_allocation("top-specific", spec, "block", 0.1)
    assert bottom[units[0]] == 1.0 and bottom[units[-1]] == 0.0
    assert top[units[-1]] > 0.0 and top[units[0]] == 0.0


def test_random_is_seeded() -> None:
    spec = backbone_spec("resnet50")
    a = strategy_allocation("random", spec, "layer", 0.1, seed=7)
    assert a == strategy_allocation("random", spec, "layer", 0.1, seed=7)
    assert a != strategy_allocation("random", spec, "layer", 0.1, seed=8)


def test_shared_and_independent_ends() -> None:
    spec = backbone_spec("resnet18")
    shared = count_params(spec, [5, 5], strategy_allocation("shared", spec, "block", 0.1), "block")
    independent = count_params(spec, [5, 5], strategy_allocation("independent", spec, "block", 0.1), "block")
    assert shared.specific_fraction == 0.0 and independent.specific_fraction == 1.0
    assert independent.total - shared.total == spec.conv_params  # the second task's full copy


def test_specific_filters_rounds_down() -> None:
    conv = backbone_spec("resnet18-narrow").convs[-1]
    assert specific_filters(conv, 1.0) == conv.out_channels
    assert specific_filters(conv, 0.0) == 0
    assert specific_filters(conv, 0.999 / conv.out_channels) == 0


def test_unknown_backbone_lists_valid_names() -> None:
    with pytest.raises(UsageError, match="resnet18-narrow"):
        get_backbone("resnet1000")


def test_allocation_with_unknown_unit_is_rejected() -> None:
    spec = backbone_spec("resnet18-narrow")
    with pytest.raises(UsageError, match="units"):
        Candidate.create(spec, [10], {"layer9.0": 0.5}, "block", strategy="search")
