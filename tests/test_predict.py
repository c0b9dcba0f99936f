"""``predict`` on a saved model: every kind of input a user passes, converted or refused in one line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlsearch import load_trained, predict
from mtlsearch._train import evaluate
from mtlsearch._trained import save_trained, train_full
from mtlsearch.errors import UsageError
from mtlsearch.models import Candidate, backbone_spec, strategy_allocation

pytestmark = pytest.mark.slow  # the fixture trains and saves a model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tiny_settings, tmp_path_factory):
    """A model trained briefly on the embedded tasks and saved the way ``mtlsearch train`` saves."""
    settings, tasks = tiny_settings
    spec = backbone_spec(settings.backbone)
    allocation = strategy_allocation("bottom-specific", spec, settings.granularity, settings.budget)
    candidate = Candidate.create(spec, settings.num_classes, allocation, settings.granularity, strategy="bottom-specific")
    result = train_full(candidate, settings, tasks, epochs=1, device="cpu")
    folder = save_trained(result, tmp_path_factory.mktemp("predict") / "model", ["trained for a test"])
    model, card = load_trained(folder)
    return folder, model, card, tasks


def _labels(model, task_index: int, images: np.ndarray) -> torch.Tensor:
    return model(model.input_config.normalise(torch.from_numpy(images)), task_index).argmax(1)


def test_uint8_float_and_task_by_name_agree_with_evaluation(saved) -> None:
    _, model, card, tasks = saved
    for index, task in enumerate(tasks):
        images = task.test.images[:300]
        expected = _labels(model, index, images)
        assert torch.equal(predict(model, images, index), expected)
        assert torch.equal(predict(model, torch.from_numpy(images), task.name), expected)  # a tensor, the task by name
        assert torch.equal(predict(model, images.astype(np.float32) / 255, index), expected)  # floats in [0, 1]
    assert model.task_names == tuple(t["name"] for t in card["tasks"])
    assert card["input"]["mean"] == list(model.input_config.mean) and card["input"]["size"] == card["image_size"]
    accuracy = evaluate(model, tasks, split="test")
    first = tasks[0]
    assert (predict(model, first.test.images, 0).numpy() == first.test.labels).mean() == pytest.approx(accuracy[first.name])


def test_grey_images_with_one_channel_are_repeated_to_the_models(saved) -> None:
    _, model, _, tasks = saved
    plain = next(i for i, t in enumerate(tasks) if t.name.startswith("plain"))
    images = tasks[plain].test.images[:200]
    assert np.array_equal(images[:, 0], images[:, 2])  # grey, stored as three equal channels
    expected = predict(model, images, plain)
    assert torch.equal(predict(model, images[:, :1], plain), expected)  # [N, 1, H, W]
    assert torch.equal(predict(model, images[:, 0], plain), expected)  # [N, H, W]


def test_another_size_goes_through_the_eval_transform(saved) -> None:
    """Images twice the size (each pixel repeated) come back to the model's 28 px: nearly the
    same pixels, so nearly the same labels as the images at their own size."""
    _, model, _, tasks = saved
    images = tasks[0].test.images[:400]
    big = images.repeat(2, axis=2).repeat(2, axis=3)
    agree = (predict(model, big, 0) == predict(model, images, 0)).float().mean()
    assert big.shape[-1] == 56 and agree >= 0.9
    wide = np.concatenate([images, images[..., :10]], axis=3)  # 28 x 38: the centre 28 x 28 after resizing the short side
    assert predict(model, wide, 0).shape == (400,)


@pytest.mark.parametrize(
    "images, task, message",
    [
        (np.zeros((2, 3, 28, 28), np.float32) + 2.0, 0, r"float images must lie in \[0, 1\], these span \[2, 2\]: pass uint8 images, or divide by 255"),
        (np.zeros((2, 3, 28, 28), np.int64), 0, r"images are int64: pass uint8 images in \[0, 255\] or floats in \[0, 1\]"),
        (np.zeros((2, 2, 28, 28), np.uint8), 0, r"images have 2 channels, the model takes 3 \(or 1, repeated\)"),
        (np.zeros((2, 28, 28, 3), np.uint8), 0, r"channels last\? use images.permute\(0, 3, 1, 2\)"),
        (np.zeros((28, 28), np.uint8), 0, r"images have shape \[28, 28\]: pass a batch \[N, C, H, W\]"),
        (np.zeros((2, 3, 28, 28), np.uint8), "sketch", r"task 'sketch' is not one of this model's tasks \(mux-a, .*\): pass one of those names"),
        (np.zeros((2, 3, 28, 28), np.uint8), 99, r"task 99 is not a task of this model: pass a name \(.*\) or a number from 0 to 7"),
        (np.full((2, 3, 28, 28), np.nan, np.float32), 0, r"float images must lie in \[0, 1\], these span \[nan, nan\]"),
    ],
)
def test_what_cannot_be_converted_is_one_line_naming_the_fix(saved, images, task, message) -> None:
    _, model, _, _ = saved
    with pytest.raises(UsageError, match=message) as caught:
        predict(model, images, task)
    assert "\n" not in str(caught.value)


def test_the_readme_snippet_runs_as_written(saved, monkeypatch) -> None:
    """The Python block of the README's 'Training the chosen candidate', run in a folder that
    holds the saved model at model/."""
    folder, _, _, _ = saved
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Training the chosen candidate") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    monkeypatch.chdir(folder.parent)
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the documented snippet itself
    labels = scope["labels"]
    assert isinstance(labels, torch.Tensor) and labels.dtype == torch.int64 and len(labels) > 0
