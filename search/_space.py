"""The search space: every proposal fits the budget by construction.

A proposal is two things (DESIGN.md's study contract names them):

- ``total``: the candidate's task-specific fraction, in ``[smallest, budget]`` on a log scale
  (``smallest`` buys one filter of the cheapest conv), so the cheap end of the front, where
  "the smallest model that loses no accuracy" lives, is explored as densely as the dear end;
- ``share:<unit>`` in ``[0, 1]`` for every unit: how that total is divided among the units.

``allocation`` turns them into filters the way the strategies fill a budget: each unit is given
its share of the total's conv weights, a unit too small for its share is made fully
task-specific and passes the excess on to the others (in proportion to their shares), every
unit is rounded down to whole filters, and what rounding left over goes, filter by filter, to
the units with the largest shares. The result never exceeds the budget, so no sampler ever
proposes a candidate that cannot be trained, and the constraint every trial still records is
always satisfied. Every allocation within the budget, the hand strategies included, is the
image of some parameters (``params``): the baselines are enqueued as such.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING

from mtlsearch.models import BackboneSpec, budget_room, largest_fraction, specific_filters

if TYPE_CHECKING:
    import optuna

TOTAL_PARAM = "total"
SHARE_PREFIX = "share:"
SPACE_VERSION = 2  # 1: one capped fraction per unit ("alloc:<unit>"), most proposals over budget


class BudgetSpace:
    """``total`` and one ``share:<unit>`` per unit, turned into an allocation that fits ``budget``."""

    def __init__(self, spec: BackboneSpec, granularity: str, budget: float) -> None:
        self.spec, self.granularity, self.budget = spec, granularity, budget

    @cached_property
    def unit_convs(self) -> dict[str, tuple]:
        return self.spec.unit_convs(self.granularity)  # type: ignore[arg-type]

    @cached_property
    def room(self) -> int:
        """Conv weights one task may own under the budget."""
        return budget_room(self.spec, self.budget)

    @cached_property
    def smallest(self) -> float:
        """The fraction that buys one filter of the cheapest conv: the low end of ``total``."""
        return min(c.weights_per_filter for c in self.spec.convs) / self.spec.conv_params

    @property
    def searchable(self) -> bool:
        """False when the budget cannot buy a single filter: every candidate is the shared one."""
        return self.budget >= self.smallest

    def suggest(self, trial: optuna.Trial) -> dict[str, float]:
        if not self.searchable:
            return dict.fromkeys(self.unit_convs, 0.0)
        total = trial.suggest_float(TOTAL_PARAM, self.smallest, self.budget, log=True)
        shares = {u: trial.suggest_float(SHARE_PREFIX + u, 0.0, 1.0) for u in self.unit_convs}
        return self.allocation(total, shares)

    def _cost(self, unit: str, fraction: float) -> int:
        return sum(specific_filters(c, fraction) * c.weights_per_filter for c in self.unit_convs[unit])

    def allocation(self, total: float, shares: Mapping[str, float]) -> dict[str, float]:
        """The fraction of every unit's filters that each task owns."""
        room = min(self.room, int(total * self.spec.conv_params + 1e-6))
        sizes = {u: self._cost(u, 1.0) for u in self.unit_convs}
        weight = {u: max(0.0, float(shares.get(u, 0.0))) for u in self.unit_convs}
        target = dict.fromkeys(self.unit_convs, 0.0)
        open_units = [u for u in self.unit_convs if weight[u] > 0]
        left = float(room)
        while open_units and left > 0:  # water filling: full units pass their excess on
            scale = left / sum(weight[u] for u in open_units)
            full = [u for u in open_units if target[u] + weight[u] * scale >= sizes[u]]
            if not full:
                for u in open_units:
                    target[u] += weight[u] * scale
                break
            for u in full:
                left -= sizes[u] - target[u]
                target[u] = float(sizes[u])
            open_units = [u for u in open_units if u not in full]
        fractions = {u: largest_fraction(self.unit_convs[u], math.floor(target[u] + 1e-6)) for u in self.unit_convs}
        spare = room - sum(self._cost(u, f) for u, f in fractions.items())
        for u in sorted((u for u in self.unit_convs if weight[u] > 0), key=lambda u: -weight[u]):
            grown = largest_fraction(self.unit_convs[u], self._cost(u, fractions[u]) + spare)  # what rounding left over
            spare -= self._cost(u, grown) - self._cost(u, fractions[u])
            fractions[u] = grown
        return fractions

    def params(self, allocation: Mapping[str, float]) -> dict[str, float]:
        """Parameters whose ``allocation`` builds the same model as ``allocation`` (which must fit
        the budget): the baselines are enqueued with them."""
        if not self.searchable:
            return {}
        costs = {u: self._cost(u, float(allocation.get(u, 0.0))) for u in self.unit_convs}
        spent, largest = sum(costs.values()), max(costs.values())
        total = min(self.budget, max(self.smallest, spent / self.spec.conv_params))
        return {TOTAL_PARAM: total, **{SHARE_PREFIX + u: (c / largest if largest else 0.0) for u, c in costs.items()}}
