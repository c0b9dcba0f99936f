"""Image transforms on ``uint8`` batches ``[N, C, H, W]`` (torch tensors, on any device).

- ``eval_transform``: resize the shorter side to ``size / crop_pct``, cut the centre
  ``size`` x ``size``: timm's evaluation recipe, what ``predict`` and evaluation of real images use.
- ``TrainAugment``: random-resized crop and horizontal flip, the usual fine-grained recipe,
  seeded (the same generator gives the same crops), applied to a batch where it lies (on the
  GPU when training runs there), so it never starves the device.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _resize(images: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    import torch.nn.functional as F

    if tuple(images.shape[-2:]) == size:
        return images
    mode = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}.get(interpolation, "bilinear")
    resized = F.interpolate(images.float(), size=size, mode=mode, antialias=mode != "nearest",
                            **({} if mode == "nearest" else {"align_corners": False}))  # fmt: skip
    return resized.round().clamp(0, 255).to(images.dtype)


def eval_transform(images: torch.Tensor, *, size: int, crop_pct: float = 1.0, interpolation: str = "bilinear") -> torch.Tensor:
    """``[N, C, H, W]`` images of any size to ``[N, C, size, size]``: the shorter side resized
    to ``size / crop_pct``, the centre cut out."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size) and crop_pct >= 1.0:
        return images
    short = max(size, round(size / crop_pct))
    scale = short / min(h, w)
    resized = _resize(images, (max(size, round(h * scale)), max(size, round(w * scale))), interpolation)
    top, left = (resized.shape[-2] - size) // 2, (resized.shape[-1] - size) // 2
    return resized[..., top : top + size, left : left + size]


class TrainAugment:
    """Random-resized crop (scale ``scale`` of the area, aspect ratio within ``ratio``) back to
    the batch's size, and a horizontal flip with probability one half; one draw per image from
    ``generator``, so a seed gives the same crops. Cropping and resizing run as one
    ``grid_sample`` over the batch where it lies (CPU or GPU)."""

    def __init__(self, *, scale: tuple[float, float] = (0.35, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        self.scale, self.ratio = scale, ratio

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        n = images.shape[0]
        draw = torch.rand((n, 5), generator=generator).to(images.device)
        area = self.scale[0] + (self.scale[1] - self.scale[0]) * draw[:, 0]
        log_ratio = math.log(self.ratio[0]) + (math.log(self.ratio[1]) - math.log(self.ratio[0])) * draw[:, 1]
        aspect = torch.exp(log_ratio)
        width = torch.sqrt(area * aspect).clamp(max=1.0)  # as fractions of the image's side
        height = torch.sqrt(area / aspect).clamp(max=1.0)
        cx = (1 - width) * draw[:, 2] + width / 2  # the crop's centre, in [0, 1]
        cy = (1 - height) * draw[:, 3] + height / 2
        flip = torch.where(draw[:, 4] < 0.5, -1.0, 1.0)
        theta = torch.zeros((n, 2, 3), device=images.device)
        theta[:, 0, 0] = width * flip
        theta[:, 0, 2] = cx * 2 - 1
        theta[:, 1, 1] = height
        theta[:, 1, 2] = cy * 2 - 1
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.round().clamp(0, 255).to(images.dtype)
