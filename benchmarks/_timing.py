"""Timing a training step the same way in every step benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def seconds_per_step(step: Callable[[], None], steps: int, device: str, *, warmup: int = 1) -> float:
    """Mean wall-clock seconds of ``step`` over ``steps`` calls after ``warmup`` untimed ones,
    waiting for the GPU before and after so that queued kernels are counted."""
    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps
