"""Parameter accounting: a pure function of backbone shape table, tasks and allocation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mtlsearch.errors import UsageError
from mtlsearch.models._spec import BackboneSpec, ConvSpec, Granularity

Allocation = Mapping[str, float]

_EPS = 1e-9


def specific_filters(conv: ConvSpec, fraction: float) -> int:
    """How many of ``conv``'s filters each task owns when its unit's fraction is ``fraction``."""
    return min(conv.out_channels, math.floor(fraction * conv.out_channels + _EPS))


def check_allocation(spec: BackboneSpec, allocation: Allocation, granularity: Granularity) -> None:
    units = spec.units(granularity)
    unknown = sorted(set(allocation) - set(units))
    if unknown:
        raise UsageError(
            f"allocation names units {unknown[:3]} that {spec.name} does not have at "
            f"{granularity} granularity; valid units start with {list(units[:3])}"
        )
    for unit, fraction in allocation.items():
        if not 0.0 <= fraction <= 1.0:
            raise UsageError(f"allocation of unit {unit!r} is {fraction}: use a fraction in [0, 1]")


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts of one multi-domain model."""

    total: int  # shared + every task's own: the study's second objective
    shared: int  # conv filters nobody owns, plus shared non-conv parameters
    specific_conv: int  # conv parameters that one task owns
    conv: int  # conv parameters of the backbone
    norms: int  # normalisation parameters of all tasks together
    heads: int  # classifier parameters of all tasks together

    @property
    def specific_fraction(self) -> float:
        """The budget's quantity: conv parameters one task owns over the backbone's."""
        return self.specific_conv / self.conv if self.conv else 0.0


def count_params(
    spec: BackboneSpec,
    num_classes: Sequence[int],
    allocation: Allocation,
    granularity: Granularity,
) -> ParamCount:
    """Exact parameter counts of the model ``build_model`` would make, without building it."""
    specific = sum(
        specific_filters(c, allocation.get(c.unit(granularity), 0.0)) * c.weights_per_filter
        for c in spec.convs
    )
    conv = spec.conv_params
    tasks = len(num_classes)
    norms = tasks * spec.norm_params
    heads = sum((spec.num_features + 1) * classes for classes in num_classes)
    shared = conv - specific + spec.other_params
    return ParamCount(
        total=shared + tasks * specific + norms + heads,
        shared=shared,
        specific_conv=specific,
        conv=conv,
        norms=norms,
        heads=heads,
    )


@dataclass(frozen=True)
class Candidate:
    """One point of the search: an allocation, where it came from, and what it costs."""

    strategy: str
    allocation: tuple[tuple[str, float], ...]  # (unit, fraction), input side first
    counts: ParamCount
    filters: tuple[int, ...] = ()  # task-specific filters of every conv: the model it builds

    @classmethod
    def create(
        cls,
        spec: BackboneSpec,
        num_classes: Sequence[int],
        allocation: Allocation,
        granularity: Granularity,
        *,
        strategy: str,
    ) -> Candidate:
        check_allocation(spec, allocation, granularity)
        ordered = tuple((u, float(allocation.get(u, 0.0))) for u in spec.units(granularity))
        filters = tuple(specific_filters(c, allocation.get(c.unit(granularity), 0.0)) for c in spec.convs)
        return cls(strategy, ordered, count_params(spec, num_classes, allocation, granularity), filters)

    @property
    def key(self) -> str:
        """Equal for two allocations that build the same model (fractions differ within a filter)."""
        return ",".join(map(str, self.filters))

    @property
    def allocation_dict(self) -> dict[str, float]:
        return dict(self.allocation)

    @property
    def specific_fraction(self) -> float:
        return self.counts.specific_fraction

    def violation(self, budget: float) -> float:
        """The constraint value: feasible when zero or less."""
        return self.specific_fraction - budget
