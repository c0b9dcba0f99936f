from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from conftest import write_image_folder
from mtlsearch.datasets import DOMAINS, load_fashion_domains, load_folder, load_tasks, scan_folder
from mtlsearch.errors import DatasetError

RAW = Path("/usr/share/datasets/fashion-mnist")


def test_embedded_benchmark_loads_offline_with_four_domains() -> None:
    tasks = load_fashion_domains()
    assert [t.name for t in tasks] == list(DOMAINS)
    assert {t.num_classes for t in tasks} == {10, 4}  # one coarse label set
    for task in tasks:
        assert task.train.images.shape[1:] == (3, 28, 28) and task.train.images.dtype == np.uint8
        assert set(np.unique(task.val.labels)) <= set(range(task.num_classes))
    # different low-level statistics: mean brightness differs across domains
    means = [t.train.images.mean() for t in tasks]
    assert max(means) - min(means) > 40


def test_embedded_file_is_small() -> None:
    path = resources.files("mtlsearch.datasets").joinpath("fashion_domains.npz")
    assert path.stat().st_size < 10_000_000  # type: ignore[attr-defined]


def test_every_task_and_split_uses_its_own_images() -> None:
    with np.load(resources.files("mtlsearch.datasets").joinpath("fashion_domains.npz")) as archive:  # type: ignore[arg-type]
        pools: dict[str, list[np.ndarray]] = {"train": [], "test": []}
        for domain in DOMAINS:
            for split in ("train", "val", "test"):
                pools["test" if split == "test" else "train"].append(archive[f"{domain}.{split}.source_index"])
    for indices in pools.values():
        joined = np.concatenate(indices)
        assert len(np.unique(joined)) == len(joined)


def test_loading_is_deterministic_and_train_size_takes_a_fixed_subset() -> None:
    a = load_tasks("fashion-domains", image_size=28, train_size=300)
    b = load_tasks("fashion-domains", image_size=28, train_size=300)
    for x, y in zip(a, b):
        assert len(x.train) == 300
        assert np.array_equal(x.train.images, y.train.images) and np.array_equal(x.val.labels, y.val.labels)


def test_embedded_resizes_to_the_study_image_size() -> None:
    tasks = load_tasks("fashion-domains", image_size=40, train_size=10)
    assert tasks[0].train.images.shape[-2:] == (40, 40)


@pytest.mark.skipif(not RAW.is_dir(), reason="needs 'apt-get install dataset-fashion-mnist' (.ci/run installs it)")
def test_rebuilding_gives_the_same_file(tmp_path: Path) -> None:
    from mtlsearch.datasets.build_fashion_domains import main

    main(["--raw", str(RAW), "--out", str(tmp_path / "rebuilt.npz")])
    shipped = resources.files("mtlsearch.datasets").joinpath("fashion_domains.npz").read_bytes()
    rebuilt = (tmp_path / "rebuilt.npz").read_bytes()
    assert hashlib.sha256(rebuilt).hexdigest() == hashlib.sha256(shipped).hexdigest()


def test_image_folder_tasks_with_carved_val(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, {
        "paint": {"train": {"cat": 10, "dog": 10}, "test": {"cat": 2, "dog": 2}},
        "photo": {"train": {"cat": 5, "dog": 5, "eel": 5}, "val": {"cat": 2, "eel": 1}, "test": {"dog": 2}},
    })  # fmt: skip
    tasks = load_folder(root, image_size=16)
    paint, photo = tasks
    assert paint.classes == ("cat", "dog") and photo.classes == ("cat", "dog", "eel")
    assert len(paint.val) == 2 and len(paint.train) == 18  # 10% of each class carved
    assert len(photo.val) == 3 and len(photo.train) == 15
    assert paint.train.images.shape[1:] == (3, 16, 16)
    again = load_folder(root, image_size=16)
    assert np.array_equal(again[0].val.images, paint.val.images)  # carving is deterministic


def test_missing_root_and_missing_split(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        scan_folder(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no task folders"):
        scan_folder(tmp_path)
    write_image_folder(tmp_path, {"a": {"train": {"x": 2}}})
    with pytest.raises(DatasetError, match="no test folder"):
        scan_folder(tmp_path)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"a": {"train": {"x": 2, "y": 2}, "test": {"x": 1}}})
    (tmp_path / "a" / "train" / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty class folder.*empty"):
        scan_folder(tmp_path)


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"a": {"train": {"x": 3, "y": 3}, "test": {"x": 1}}})
    (tmp_path / "a" / "train" / "x" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="broken.png"):
        load_folder(tmp_path, image_size=8)
