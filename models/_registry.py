"""Backbone registry over timm: configuration is data, one row per backbone."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from mtlsearch.errors import UsageError

if TYPE_CHECKING:
    from torch import nn


def _stride_one_stem(model: nn.Module) -> None:
    """Keep small images at full resolution through the first stem conv (28 px -> 14 px)."""
    model.conv1[0].stride = (1, 1)  # type: ignore[index]


@dataclass(frozen=True)
class BackboneEntry:
    """One registered backbone: a timm model name, its keyword arguments and an optional edit."""

    name: str
    timm_name: str
    description: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    post_build: Callable[[nn.Module], None] | None = None

    def create(self, *, pretrained: bool = False, in_chans: int = 3) -> nn.Module:
        """The timm feature extractor (no classifier), randomly initialised unless pretrained."""
        import timm

        model = timm.create_model(
            self.timm_name, pretrained=pretrained, num_classes=0, in_chans=in_chans, **self.kwargs
        )
        if self.post_build is not None:
            self.post_build(model)
        return model


def ensure_pretrained(name: str) -> None:
    """Fetch (or find in timm's cache) the ImageNet weights of ``name`` now, so that a machine
    without them fails at start with a clear line instead of in its first trial."""
    entry = get_backbone(name)
    try:
        entry.create(pretrained=True)
    except Exception as exc:  # no network, no cache, no weights for this architecture
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot get ImageNet weights for {name} ({reason[:160]}): run once where timm can download them "
            "(they are cached under ~/.cache/huggingface), or use 'pretrained = false' in the preset"
        ) from None


_ENTRIES = (
    BackboneEntry("resnet18", "resnet18", "ResNet-18 (11.2M)"),
    BackboneEntry("resnet34", "resnet34", "ResNet-34 (21.3M)"),
    BackboneEntry("resnet50", "resnet50", "ResNet-50 (23.5M), the paper's second backbone"),
    BackboneEntry("mobilenetv2_100", "mobilenetv2_100", "MobileNetV2 1.0, the paper's backbone"),
    BackboneEntry("mnasnet_100", "mnasnet_100", "MnasNet-A1 1.0"),
    BackboneEntry(
        "resnet18-narrow",
        "resnet18",
        "ResNet-18 with channels 16-128 and a stride-1 deep stem, for 28-64 px images",
        kwargs=MappingProxyType(
            {"channels": (16, 32, 64, 128), "stem_width": 8, "stem_type": "deep"}
        ),
        post_build=_stride_one_stem,
    ),
)

BACKBONES: Mapping[str, BackboneEntry] = MappingProxyType({e.name: e for e in _ENTRIES})


def get_backbone(name: str) -> BackboneEntry:
    """The registered backbone called ``name``; unknown names list the valid ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        valid = ", ".join(sorted(BACKBONES))
        raise UsageError(f"unknown backbone {name!r}: choose one of {valid}") from None
