from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_settings():
    """Embedded preset at a fidelity that trains a candidate in about a second."""
    from mtlsearch._settings import resolve_settings
    from mtlsearch.datasets import load_tasks

    settings = resolve_settings("embedded", epochs=1, train_size=64)
    tasks = load_tasks(settings.dataset, image_size=settings.image_size, train_size=64)
    tasks = [dataclasses.replace(t, val=t.val.head(100)) for t in tasks]
    settings = dataclasses.replace(
        settings, tasks=tuple(t.name for t in tasks), num_classes=tuple(t.num_classes for t in tasks)
    )
    return settings, tasks


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "OPTUNA_STORAGE"}
    full_env.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "mtlsearch", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def write_image_folder(root: Path, tasks: dict[str, dict[str, dict[str, int]]], size: int = 12) -> Path:
    """``tasks[task][split][class] = count`` tiny PNGs of distinct colours."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for task, splits in tasks.items():
        for split, classes in splits.items():
            for index, (cls, count) in enumerate(classes.items()):
                folder = root / task / split / cls
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    pixels = np.full((size, size, 3), 40 * index, dtype=np.uint8)
                    pixels += rng.integers(0, 30, size=pixels.shape, dtype=np.uint8)
                    Image.fromarray(pixels).save(folder / f"{i}.png")
    return root
