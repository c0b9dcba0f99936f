"""The shape table of a backbone: every conv layer, its unit, and the other parameters.

It is read once per backbone from a timm model built on the meta device (no memory, no
weights), cached, and is all that parameter accounting needs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from mtlsearch.errors import UsageError
from mtlsearch.models._registry import get_backbone

if TYPE_CHECKING:
    from torch import nn

Granularity = Literal["layer", "block", "stage"]
GRANULARITIES: tuple[Granularity, ...] = ("layer", "block", "stage")


@dataclass(frozen=True)
class ConvSpec:
    """One conv layer: ``out_channels`` filters of ``weights_per_filter`` parameters each."""

    name: str
    out_channels: int
    weights_per_filter: int  # in_channels / groups * kh * kw, plus one for a bias
    block: str
    stage: str

    @property
    def params(self) -> int:
        return self.out_channels * self.weights_per_filter

    def unit(self, granularity: Granularity) -> str:
        return {"layer": self.name, "block": self.block, "stage": self.stage}[granularity]


@dataclass(frozen=True)
class BackboneSpec:
    """Everything parameter accounting needs to know about a backbone."""

    name: str
    convs: tuple[ConvSpec, ...]
    norm_params: int  # parameters of every normalisation layer: each task has its own copy
    other_params: int  # shared parameters that are neither conv nor normalisation
    num_features: int  # width of the pooled features the task classifiers read

    @property
    def conv_params(self) -> int:
        return sum(c.params for c in self.convs)

    def units(self, granularity: Granularity) -> tuple[str, ...]:
        """Unit names from the input side to the output side."""
        return tuple(dict.fromkeys(c.unit(granularity) for c in self.convs))

    def unit_convs(self, granularity: Granularity) -> dict[str, tuple[ConvSpec, ...]]:
        grouped: dict[str, list[ConvSpec]] = {u: [] for u in self.units(granularity)}
        for conv in self.convs:
            grouped[conv.unit(granularity)].append(conv)
        return {u: tuple(cs) for u, cs in grouped.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready): a study stores it, so reading results needs no torch."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneSpec:
        return cls(**{**data, "convs": tuple(ConvSpec(**c) for c in data["convs"])})


def check_granularity(granularity: str) -> Granularity:
    if granularity not in GRANULARITIES:
        raise UsageError(
            f"unknown granularity {granularity!r}: choose one of {', '.join(GRANULARITIES)}"
        )
    return granularity  # type: ignore[return-value]


def _patterns(matcher: Any) -> Iterator[tuple[str, str]]:
    """(group key, regex) pairs of a timm ``group_matcher`` dict."""
    for key, spec in matcher.items():
        if isinstance(spec, str):
            yield key, spec
        else:
            for regex, _ in spec:
                yield key, regex


def _unit_of(name: str, matcher: Any) -> str:
    for key, regex in _patterns(matcher):
        found = re.match(regex, name)
        if found:
            return "stem" if key == "stem" else found.group(0).rstrip(".")
    return name.split(".")[0]


def spec_from_model(name: str, model: nn.Module) -> BackboneSpec:
    """Read the shape table off a built feature extractor (any device, meta included)."""
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm

    fine = model.group_matcher(coarse=False)  # type: ignore[operator]
    coarse = model.group_matcher(coarse=True)  # type: ignore[operator]
    convs = []
    counted: set[int] = set()
    norm_params = 0
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if type(module) is not nn.Conv2d:
                raise UsageError(
                    f"backbone {name!r} uses {type(module).__name__} at {module_name}; "
                    "only plain Conv2d layers can hold task-specific filters"
                )
            per_filter = module.weight[0].numel() + (1 if module.bias is not None else 0)
            convs.append(
                ConvSpec(
                    name=module_name,
                    out_channels=module.out_channels,
                    weights_per_filter=per_filter,
                    block=_unit_of(module_name, fine),
                    stage=_unit_of(module_name, coarse),
                )
            )
            counted.update(id(p) for p in module.parameters(recurse=False))
        elif isinstance(module, _BatchNorm):
            params = list(module.parameters())
            norm_params += sum(p.numel() for p in params)
            counted.update(id(p) for p in params)
    other = sum(p.numel() for p in model.parameters() if id(p) not in counted)
    return BackboneSpec(
        name=name,
        convs=tuple(convs),
        norm_params=norm_params,
        other_params=other,
        num_features=int(model.num_features),  # type: ignore[arg-type]
    )


@cache
def backbone_spec(name: str, in_chans: int = 3) -> BackboneSpec:
    """The shape table of a registered backbone, read from a meta-device build, cached."""
    import torch

    entry = get_backbone(name)
    with torch.device("meta"):
        model = entry.create(in_chans=in_chans)
    return spec_from_model(name, model)
