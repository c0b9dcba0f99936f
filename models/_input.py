"""What a backbone expects of its input, carried by the model that uses it.

A backbone started from ImageNet weights (``pretrained`` or a checkpoint passed as
``--weights``) expects the normalisation it was trained with: timm's ``pretrained_cfg`` (mean,
std, interpolation and the crop ratio timm evaluates at). A backbone trained from scratch gets
the documented default ``DEFAULT``: mean 0.5 and std 0.25 per channel (uint8 images map to
[-2, 2]), bilinear resizing, no crop margin. Training, evaluation, ``predict`` and the model
card all read it from the model, so nobody copies a constant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from mtlsearch.models._registry import get_backbone

if TYPE_CHECKING:
    import torch

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class InputConfig:
    """How ``uint8`` images become the network's input.

    ``mean`` and ``std`` act on images scaled to [0, 1]; ``size`` is the side the network sees;
    the eval transform resizes the shorter side to ``size / crop_pct`` with ``interpolation``
    and cuts the centre ``size`` x ``size`` (timm's evaluation recipe; ``crop_pct`` 1 resizes
    straight to ``size``)."""

    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    size: int = 224
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    source: str = "default"  # "default" (from scratch) or the timm pretrained_cfg it came from

    @property
    def channels(self) -> int:
        return len(self.mean)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "mean": tuple(known.get("mean", cls.mean)), "std": tuple(known.get("std", cls.std))})  # type: ignore[arg-type]

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` images ``[N, C, H, W]`` to normalised floats on their device."""
        import torch

        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images.float() / 255.0 - mean) / std


DEFAULT = InputConfig()


def input_config(backbone: str, *, size: int, imagenet: bool) -> InputConfig:
    """The input configuration of a registered backbone at ``size`` px: timm's pretrained
    configuration when it starts from ImageNet weights (``imagenet``), else ``DEFAULT``."""
    if not imagenet:
        return replace(DEFAULT, size=size)
    import timm

    entry = get_backbone(backbone)
    cfg = timm.models.get_pretrained_cfg(entry.timm_name)
    if cfg is None:  # a timm architecture without a pretrained configuration
        return replace(DEFAULT, size=size)
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    interpolation = data.get("interpolation") or "bilinear"
    return InputConfig(
        mean=tuple(float(v) for v in data.get("mean", DEFAULT.mean)),
        std=tuple(float(v) for v in data.get("std", DEFAULT.std)),
        size=size,
        interpolation=interpolation if interpolation in INTERPOLATIONS else "bilinear",
        crop_pct=float(data.get("crop_pct") or 1.0),
        source=f"timm:{entry.timm_name}",
    )
