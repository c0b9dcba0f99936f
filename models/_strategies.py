"""The paper's sharing strategies, each filling a budget exactly at filter granularity."""

from __future__ import annotations

import random as _random
from collections.abc import Sequence

from mtlsearch.errors import UsageError
from mtlsearch.models._accounting import specific_filters
from mtlsearch.models._spec import BackboneSpec, ConvSpec, Granularity

STRATEGIES = ("shared", "bottom-specific", "top-specific", "random", "independent")
BASELINES = ("shared", "bottom-specific", "top-specific", "random")


def budget_room(spec: BackboneSpec, budget: float) -> int:
    """Conv parameters one task may own under ``budget``."""
    return int(budget * spec.conv_params + 1e-6)


def largest_fraction(convs: Sequence[ConvSpec], room: int) -> float:
    """The largest fraction of a unit whose task-specific filters fit in ``room`` parameters."""
    options = sorted({j / c.out_channels for c in convs for j in range(c.out_channels + 1)})
    best = 0.0
    for fraction in options:
        cost = sum(specific_filters(c, fraction) * c.weights_per_filter for c in convs)
        if cost > room:
            break
        best = fraction
    return best


def fill(spec: BackboneSpec, granularity: Granularity, order: Sequence[str], budget: float) -> dict[str, float]:
    """Make units task-specific in ``order`` until ``budget`` is spent; the last one partly."""
    room = budget_room(spec, budget)
    unit_convs = spec.unit_convs(granularity)
    allocation = dict.fromkeys(spec.units(granularity), 0.0)
    for unit in order:
        convs = unit_convs[unit]
        size = sum(c.params for c in convs)
        if size <= room:
            allocation[unit] = 1.0
            room -= size
            continue
        fraction = largest_fraction(convs, room)
        allocation[unit] = fraction
        break
    return allocation


def strategy_allocation(
    strategy: str,
    spec: BackboneSpec,
    granularity: Granularity,
    budget: float,
    *,
    seed: int = 0,
) -> dict[str, float]:
    """The allocation of a named strategy at ``budget`` (``random`` is seeded)."""
    units = list(spec.units(granularity))
    if strategy == "shared":
        return dict.fromkeys(units, 0.0)
    if strategy == "independent":
        return dict.fromkeys(units, 1.0)
    if strategy == "bottom-specific":
        return fill(spec, granularity, units, budget)
    if strategy == "top-specific":
        return fill(spec, granularity, units[::-1], budget)
    if strategy == "random":
        order = units[:]
        _random.Random(seed).shuffle(order)
        return fill(spec, granularity, order, budget)
    raise UsageError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
