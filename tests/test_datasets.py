from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from conftest import write_image_folder
from mtlsearch.datasets import DOMAINS, EMBEDDED_BENCHMARKS, load_embedded, load_fashion_domains, load_folder, load_tasks, scan_folder
from mtlsearch.errors import DatasetError

RAW = Path("/usr/share/datasets/fashion-mnist")


def test_embedded_benchmark_loads_offline_with_eight_domains() -> None:
    tasks = load_embedded()
    assert [t.name for t in tasks] == list(DOMAINS) == [f"mux-{d}" for d in "abcd"] + [f"plain-{d}" for d in "abcd"]
    assert {t.num_classes for t in tasks} == {10}
    for task in tasks:
        assert task.train.images.shape[1:] == (3, 28, 28) and task.train.images.dtype == np.uint8
        assert (len(task.train), len(task.val), len(task.test)) == (250, 2500, 1250)
        assert set(np.unique(task.val.labels)) <= set(range(task.num_classes))
    plain = tasks[4].train.images
    assert np.array_equal(plain[:, 0], plain[:, 1]) and np.array_equal(plain[:, 0], plain[:, 2])  # grey
    assert not np.array_equal(tasks[0].train.images[:, 0], tasks[0].train.images[:, 1])  # colour


def test_a_multiplexed_image_holds_its_labelled_garment_in_its_own_colour_direction() -> None:
    """Unmixing a mux image with the inverse of its domain's mixing matrix gives back the
    labelled garment and the two distractors (other garments of the same split); the labelled
    one has no brightness, the brighter distractor is in the brightness, and each domain's
    labelled direction is its own."""
    from mtlsearch.datasets._mux import GREY

    with np.load(resources.files("mtlsearch.datasets").joinpath("fashion_mux.npz")) as archive:  # type: ignore[arg-type]
        mixes = [archive[f"mux-{d}.mix"] for d in "abcd"]
        garments = archive["mux-a.val.images"][:, 0].astype(np.float64) / 255
        distractors = archive["mux-a.val.distractors"]
    images = load_embedded()[0].val.images[:50].astype(np.float64)
    unmixed = np.einsum("nchw,kc->nkhw", images - 127.5, np.linalg.inv(mixes[0]))
    assert np.abs(unmixed[:, 0] - garments[:50]).max() < 0.03  # uint8 rounding only
    assert np.abs(unmixed[:, 1] - garments[distractors[:50, 0]]).max() < 0.03
    assert np.abs(unmixed[:, 2] - garments[distractors[:50, 1]]).max() < 0.03
    assert (distractors != np.arange(len(distractors))[:, None]).all() and (distractors[:, 0] != distractors[:, 1]).all()
    labels = [m[:, 0] / np.linalg.norm(m[:, 0]) for m in mixes]
    assert all(abs(label @ GREY) < 1e-9 for label in labels)  # no brightness
    assert all(np.linalg.norm(m[:, 1]) > np.linalg.norm(m[:, 0]) for m in mixes)  # a brighter distractor
    assert all(abs(labels[i] @ labels[j]) < 0.75 for i in range(4) for j in range(i))  # 45 degrees apart or more


def test_the_control_benchmark_loads_with_its_four_domains() -> None:
    tasks = load_fashion_domains()
    assert [t.name for t in tasks] == list(EMBEDDED_BENCHMARKS["fashion-domains"].domains)
    assert {t.num_classes for t in tasks} == {10, 4}  # one coarse label set
    means = [t.train.images.mean() for t in tasks]
    assert max(means) - min(means) > 40  # different low-level statistics


@pytest.mark.parametrize("benchmark", list(EMBEDDED_BENCHMARKS))
def test_embedded_files_are_small_and_every_task_and_split_uses_its_own_images(benchmark: str) -> None:
    info = EMBEDDED_BENCHMARKS[benchmark]
    path = resources.files("mtlsearch.datasets").joinpath(info.file)
    assert path.stat().st_size < 13_000_000  # type: ignore[attr-defined]
    with np.load(path) as archive:  # type: ignore[arg-type]
        pools: dict[str, list[np.ndarray]] = {"train": [], "test": []}
        for domain in info.domains:
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
    c, d = load_tasks("fashion-mux", image_size=28, train_size=100), load_tasks("fashion-mux", image_size=28, train_size=100)
    assert all(np.array_equal(x.train.images, y.train.images) and len(x.train) == 100 for x, y in zip(c, d))


def test_val_size_scores_on_a_fixed_random_subset_even_of_a_class_ordered_split() -> None:
    from mtlsearch.datasets._task import Split, Task

    full = load_tasks("fashion-mux", image_size=28, train_size=100)
    a, b = load_tasks("fashion-mux", image_size=28, train_size=100, val_size=300), load_tasks("fashion-mux", image_size=28, val_size=300)
    for whole, x, y in zip(full, a, b):
        assert len(x.val) == 300 and np.array_equal(x.val.images, y.val.images) and len(x.train) == 100
        rows = {img.tobytes() for img in whole.val.images}
        assert all(img.tobytes() in rows for img in x.val.images)  # a subset of the task's own validation images
        assert np.array_equal(x.test.images, whole.test.images)
    assert np.array_equal(load_tasks("fashion-mux", image_size=28, val_size=10**6)[0].val.labels, full[0].val.labels)  # more than there are: all
    # a split written class after class (as image folders are read) still gives every class its share
    labels = np.repeat(np.arange(10), 100)
    ordered = Task("t", tuple("abcdefghij"), Split(np.zeros((10, 1, 1, 1), np.uint8), np.arange(10)), Split(np.zeros((1000, 1, 1, 1), np.uint8), labels), Split(np.zeros((1, 1, 1, 1), np.uint8), labels[:1]))
    counts = np.bincount(ordered.with_val_size(200).val.labels, minlength=10)
    assert counts.min() >= 8 and counts.max() <= 35


def test_embedded_resizes_to_the_study_image_size() -> None:
    tasks = load_tasks("fashion-domains", image_size=40, train_size=10)
    assert tasks[0].train.images.shape[-2:] == (40, 40)


@pytest.mark.slow
@pytest.mark.skipif(not RAW.is_dir(), reason="needs 'apt-get install dataset-fashion-mnist' (.ci/run installs it)")
@pytest.mark.parametrize("benchmark", list(EMBEDDED_BENCHMARKS))
def test_rebuilding_gives_the_same_file(tmp_path: Path, benchmark: str) -> None:
    import importlib

    info = EMBEDDED_BENCHMARKS[benchmark]
    importlib.import_module(f"mtlsearch.datasets.{info.builder}").main(["--raw", str(RAW), "--out", str(tmp_path / "rebuilt.npz")])
    shipped = resources.files("mtlsearch.datasets").joinpath(info.file).read_bytes()
    rebuilt = (tmp_path / "rebuilt.npz").read_bytes()
    assert hashlib.sha256(rebuilt).hexdigest() == hashlib.sha256(shipped).hexdigest()


@pytest.mark.slow
@pytest.mark.skipif(not RAW.is_dir(), reason="needs 'apt-get install dataset-fashion-mnist' (.ci/run installs it)")
def test_a_variant_build_spreads_its_multiplexed_angles_and_keeps_domains_disjoint() -> None:
    """The builder's variants (benchmarks/mux_variants.py): eight multiplexed domains, their
    labelled directions spread over the half turn, every image from its own source image, and
    ``tasks_of`` renders what ``build`` returns the way the shipped file is rendered."""
    from mtlsearch.datasets import tasks_of
    from mtlsearch.datasets.build_fashion_mux import build, domains

    arrays = build(RAW, mux=8, plain=0)
    mux, plain = domains(8, 0)
    assert plain == () and len(mux) == 8
    labels = [arrays[f"{d}.mix"][:, 0] / np.linalg.norm(arrays[f"{d}.mix"][:, 0]) for d in mux]
    angles = sorted(round(float(np.degrees(np.arccos(np.clip(abs(labels[0] @ v), 0, 1)))), 3) for v in labels)
    assert angles == [0.0, 22.5, 22.5, 45.0, 45.0, 67.5, 67.5, 90.0]  # 0 to 157.5 degrees, seen from the first
    taken = np.concatenate([arrays[f"{d}.{split}.source_index"] for d in mux for split in ("train", "val")])  # one pool
    assert len(np.unique(taken)) == len(taken) == 8 * 2750
    tasks = tasks_of(arrays, mux)
    assert [t.name for t in tasks] == list(mux) and tasks[0].val.images.shape == (2500, 3, 28, 28)
    with pytest.raises(ValueError, match="at most 8"):
        build(RAW, mux=5, plain=4)
    with pytest.raises(ValueError, match="20000 training images a multiplexed domain"):
        build(RAW, mux=4, plain=4, mux_train=20000)


@pytest.mark.slow
@pytest.mark.skipif(not RAW.is_dir(), reason="needs 'apt-get install dataset-fashion-mnist' (.ci/run installs it)")
def test_a_variant_build_with_more_multiplexed_training_images() -> None:
    """``mux_train`` (the ``mux-rich`` probe): the multiplexed domains get that many training
    images, the plain ones keep 250, the other splits keep their sizes, and no source image is
    used twice."""
    from mtlsearch.datasets.build_fashion_mux import SIZES, build, domains

    arrays = build(RAW, mux=2, plain=2, mux_train=1000)
    mux, plain = domains(2, 2)
    assert [len(arrays[f"{d}.train.labels"]) for d in mux + plain] == [1000, 1000, SIZES["train"], SIZES["train"]]
    assert {len(arrays[f"{d}.val.labels"]) for d in mux + plain} == {SIZES["val"]}
    assert arrays[f"{mux[0]}.train.distractors"].shape == (1000, 2)
    taken = np.concatenate([arrays[f"{d}.{split}.source_index"] for d in mux + plain for split in ("train", "val")])
    assert len(np.unique(taken)) == len(taken) == 2 * 3500 + 2 * 2750


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
