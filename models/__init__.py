"""Backbones, the multi-domain network, parameter accounting and sharing strategies."""

from __future__ import annotations

from mtlsearch.models._accounting import (
    Allocation,
    Candidate,
    ParamCount,
    check_allocation,
    count_params,
    specific_filters,
)
from mtlsearch.models._input import DEFAULT as DEFAULT_INPUT
from mtlsearch.models._input import InputConfig, input_config
from mtlsearch.models._registry import BACKBONES, BackboneEntry, ensure_pretrained, get_backbone
from mtlsearch.models._spec import (
    GRANULARITIES,
    BackboneSpec,
    ConvSpec,
    Granularity,
    backbone_spec,
    check_granularity,
    spec_from_model,
)
from mtlsearch.models._weights import check_checkpoint, load_backbone_weights, read_checkpoint
from mtlsearch.models._strategies import (
    BASELINES,
    STRATEGIES,
    budget_room,
    largest_fraction,
    strategy_allocation,
)

__all__ = [
    "BACKBONES",
    "BASELINES",
    "GRANULARITIES",
    "STRATEGIES",
    "Allocation",
    "BackboneEntry",
    "BackboneSpec",
    "Candidate",
    "DEFAULT_INPUT",
    "InputConfig",
    "ConvSpec",
    "Granularity",
    "MultiDomainNet",
    "ParamCount",
    "backbone_spec",
    "budget_room",
    "build_model",
    "check_allocation",
    "check_checkpoint",
    "check_granularity",
    "count_params",
    "ensure_pretrained",
    "get_backbone",
    "input_config",
    "largest_fraction",
    "load_backbone_weights",
    "read_checkpoint",
    "spec_from_model",
    "specific_filters",
    "stack_tasks",
    "strategy_allocation",
]


def __getattr__(name: str) -> object:
    # The network needs torch at import time; accounting does not.
    if name in ("MultiDomainNet", "build_model", "stack_tasks"):
        from mtlsearch.models import _network

        return getattr(_network, name)
    raise AttributeError(name)
