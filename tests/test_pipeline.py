"""The input pipeline: each backbone's own normalisation, the eval crop, train-time augmentation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_image_folder
from mtlsearch._settings import Settings, resolve_settings
from mtlsearch._train import study_input, train_allocation, train_candidate
from mtlsearch.datasets import TrainAugment, decode_tasks, eval_transform, scan_folder
from mtlsearch.models import DEFAULT_INPUT, get_backbone


def _checkpoint(tmp_path: Path, backbone: str) -> Path:
    torch.manual_seed(1)
    path = tmp_path / "imagenet-like.pt"
    torch.save(get_backbone(backbone).create().state_dict(), path)
    return path


@pytest.mark.slow
def test_a_backbone_from_imagenet_weights_carries_timms_normalisation_and_the_card_records_it(tiny_settings, tmp_path: Path) -> None:
    import timm

    from mtlsearch._trained import load_trained, save_trained, train_full
    from mtlsearch.models import Candidate, backbone_spec

    settings, tasks = tiny_settings
    settings = dataclasses.replace(settings, weights=None, weights_sha256=None)  # the embedded preset's checkpoint left out
    assert study_input(settings) == dataclasses.replace(DEFAULT_INPUT, size=settings.image_size)  # from scratch: the default
    cfg = timm.models.get_pretrained_cfg("resnet18").to_dict()
    weighted = dataclasses.replace(settings, weights=str(_checkpoint(tmp_path, settings.backbone)))
    config = study_input(weighted)
    assert config.mean == tuple(cfg["mean"]) and config.std == tuple(cfg["std"]) and config.crop_pct == cfg["crop_pct"]
    assert config.source == "timm:resnet18" and config.size == settings.image_size
    candidate = Candidate.create(backbone_spec(settings.backbone), settings.num_classes, {}, settings.granularity, strategy="shared")
    result = train_full(candidate, weighted, tasks, epochs=1, device="cpu", weights=Path(weighted.weights))
    assert result.model.input_config == config
    folder = save_trained(result, tmp_path / "m", [])
    card = json.loads((folder / "card.json").read_text())
    assert card["input"]["mean"] == list(cfg["mean"]) and card["input"]["std"] == list(cfg["std"])
    assert load_trained(folder)[0].input_config == config


def test_an_old_card_without_the_full_input_loads_with_the_default_normalisation(tiny_settings, tmp_path: Path) -> None:
    from mtlsearch._trained import card_input

    old = {"image_size": 28, "input": {"scale": 1 / 255, "mean": 0.5, "std": 0.25, "channels": 3}}
    assert card_input(old) == dataclasses.replace(DEFAULT_INPUT, size=28)


def test_augmentation_is_seeded_keeps_shape_and_flips_and_crops(tiny_settings) -> None:
    _, tasks = tiny_settings
    images = torch.from_numpy(tasks[4].train.images[:32])
    augment = TrainAugment()
    a = augment(images, torch.Generator().manual_seed(3))
    b = augment(images, torch.Generator().manual_seed(3))
    c = augment(images, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)  # the same seed, the same crops
    assert a.shape == images.shape and a.dtype == torch.uint8
    whole = TrainAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0))  # no crop: only the flip is left
    flipped = whole(images, torch.Generator().manual_seed(0))
    same = [torch.equal(f, i) for f, i in zip(flipped, images)]
    mirrored = [torch.equal(f, i.flip(-1)) for f, i in zip(flipped, images)]
    assert all(s or m for s, m in zip(same, mirrored)) and 0 < sum(mirrored) < len(images)


@pytest.mark.slow
def test_augmentation_touches_training_batches_only_and_is_a_study_setting(tiny_settings) -> None:
    settings, tasks = tiny_settings
    calls: list[int] = []

    class Counting(TrainAugment):
        def __call__(self, images, generator):  # type: ignore[no-untyped-def]
            calls.append(len(images))
            return super().__call__(images, generator)

    torch.manual_seed(0)
    from mtlsearch.models import build_model

    model = build_model(settings.backbone, num_classes=list(settings.num_classes), allocation={}, granularity=settings.granularity)
    fidelity = dataclasses.replace(settings.fidelity, batch_size=16)
    result = train_candidate(model, tasks, fidelity, device="cpu", seed=0, execution="loop", augment=Counting())
    steps = -(-max(len(t.train) for t in tasks) // 16) * fidelity.epochs
    assert len(calls) == steps * len(tasks) and set(calls) == {16}  # every task batch of every step, nothing at evaluation
    assert set(result.task_accuracy) == {t.name for t in tasks}
    on = dataclasses.replace(settings, augment=True)
    assert on.differences(settings) == ["augment: True -> False"]  # stored and compared like the others
    _, plain = train_allocation({}, settings, tasks, device="cpu", execution="loop")
    _, again = train_allocation({}, settings, tasks, device="cpu", execution="loop")
    _, augmented = train_allocation({}, on, tasks, device="cpu", execution="loop")
    assert plain.task_accuracy == again.task_accuracy and augmented.task_accuracy != plain.task_accuracy


def test_a_preset_without_the_key_and_a_study_stored_before_it_load_as_before(tmp_path: Path) -> None:
    preset = tmp_path / "old.toml"
    preset.write_text('dataset = "fashion-domains"\nbudget = 0.1\n')
    assert resolve_settings(str(preset)).augment is False
    assert resolve_settings("fgc-mobilenetv2", data_root=str(tmp_path)).augment is True  # on in the real-data presets
    assert resolve_settings("embedded").augment is False  # the embedded benchmark keeps its fixed images
    stored = resolve_settings("embedded").to_dict()
    del stored["augment"]
    assert Settings.from_dict(stored) == resolve_settings("embedded")
    del stored["fidelity"]["val_size"]  # a study stored before val_size scored on every image, and still does
    assert Settings.from_dict(stored).fidelity.val_size is None
    assert Settings.from_dict(stored) == resolve_settings("embedded")
    assert resolve_settings("embedded", val_size=300).fidelity.val_size == 300


def test_validation_and_test_images_go_through_the_eval_crop(tmp_path: Path) -> None:
    """A frame of another colour around a centre: the eval crop at crop_pct 0.5 keeps only the
    centre; training images are decoded whole, for the random-resized crops to cut from."""
    from PIL import Image

    root = write_image_folder(tmp_path / "data", {"t": {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}})
    for path in root.rglob("*.png"):
        pixels = np.zeros((40, 40, 3), dtype=np.uint8)
        pixels[10:30, 10:30] = 200  # the centre half of each side
        Image.fromarray(pixels).save(path)
    (task,) = decode_tasks(scan_folder(root), image_size=20, crop_pct=0.5)
    assert (task.val.images == 200).all() and (task.test.images == 200).all()
    assert (task.train.images == 0).any()  # whole
    x = torch.from_numpy(np.pad(np.full((2, 3, 20, 20), 200, np.uint8), ((0, 0), (0, 0), (10, 10), (10, 10))))
    assert (eval_transform(x, size=20, crop_pct=0.5) == 200).all()
    assert eval_transform(x, size=40).shape == x.shape and torch.equal(eval_transform(x, size=40), x)


@pytest.mark.parametrize("size", [28, 40])
def test_eval_transform_fits_any_shape(size: int) -> None:
    x = torch.randint(0, 256, (3, 3, 31, 57), dtype=torch.uint8)
    assert eval_transform(x, size=size).shape == (3, 3, size, size)
