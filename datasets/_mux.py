"""Colour multiplexing: three garments in one image, each along its own colour direction.

An image of a multiplexed ``fashion-mux`` domain holds three grey garments, each added to mid
grey along one column of the domain's 3x3 mixing matrix:

- the labelled garment along a colour-opponent direction (no brightness) at the domain's own
  angle in the chroma plane;
- a distractor garment along the grey axis, brighter than the labelled one: a network that
  reads brightness, as grey domains teach shared filters to, sees the wrong garment;
- a second distractor along the chroma direction at right angles to the labelled one, which is
  where another multiplexed domain keeps *its* labelled garment.

The three directions are orthogonal, so one cross-channel mix at the input (a task-specific
first convolution) separates the labelled garment exactly; per-channel norms after a shared
convolution cannot mix channels, and a shared first convolution must serve every domain's
angle at once.
"""

from __future__ import annotations

import numpy as np

GREY = np.ones(3) / np.sqrt(3.0)
_CHROMA = (np.array([1.0, -1.0, 0.0]) / np.sqrt(2.0), np.array([1.0, 1.0, -2.0]) / np.sqrt(6.0))
GAINS = (1.0, 1.5, 1.0)  # labelled garment, brightness distractor, chroma distractor


def mix_matrix(angle: float, gains: tuple[float, float, float] = GAINS) -> np.ndarray:
    """Columns: the colour of the labelled garment (chroma at ``angle``), of the brightness
    distractor and of the chroma distractor (``angle`` + 90 degrees), scaled by ``gains`` and
    then all together so that no channel of any mix leaves [0, 255] around mid grey."""
    a, b = _CHROMA
    label = np.cos(angle) * a + np.sin(angle) * b
    other = -np.sin(angle) * a + np.cos(angle) * b
    mix = np.stack([label, GREY, other], axis=1) * np.asarray(gains)[None, :]
    reach = max(np.clip(mix, 0, None).sum(axis=1).max(), -np.clip(mix, None, 0).sum(axis=1).min())
    return mix * (127.5 / reach)


def render_mux(garments: np.ndarray, distractors: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """``uint8 [N, 3, H, W]`` images from grey garments ``[N, 1, H, W]``: garment ``i`` along
    ``mix[:, 0]``, garments ``distractors[i]`` (indices into ``garments``) along ``mix[:, 1]``
    and ``mix[:, 2]``, around mid grey."""
    grey = garments.reshape(len(garments), *garments.shape[-2:]).astype(np.float64) / 255.0
    stack = np.stack([grey, grey[distractors[:, 0]], grey[distractors[:, 1]]], axis=1)
    mixed = 127.5 + np.einsum("nkhw,ck->nchw", stack, mix)
    return np.rint(np.clip(mixed, 0, 255)).astype(np.uint8)
