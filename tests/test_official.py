"""Readers of the paper's datasets, on tiny fixtures written in each official format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from mtlsearch.datasets import DECATHLON_TASKS, FGC_READERS, load_tasks, scan_decathlon, scan_fgc
from mtlsearch.errors import DatasetError

RNG = np.random.default_rng(0)


def _jpg(path: Path, shade: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(np.full((20, 30, 3), shade) + RNG.integers(0, 20, (20, 30, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def write_aircraft(root: Path) -> None:
    data = root / "fgvc-aircraft-2013b" / "data"
    variants = ["Boeing 707-320", "A320", "DHC-8-100"]
    (data).mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    n = 1000000
    for split, per_class in (("train", 4), ("val", 2), ("test", 2)):
        lines = []
        for c, variant in enumerate(variants):
            for _ in range(per_class):
                n += 1
                _jpg(data / "images" / f"{n}.jpg", 60 * c)
                lines.append(f"{n} {variant}")
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")


def write_cub(root: Path) -> None:
    base = root / "CUB_200_2011"
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    images, labels, split = [], [], []
    i = 0
    for c, name in enumerate(classes, start=1):
        for k in range(14):
            i += 1
            rel = f"{name}/{name.split('.')[1]}_{k:04d}_{i}.jpg"
            _jpg(base / "images" / rel, 90 * c)
            images.append(f"{i} {rel}")
            labels.append(f"{i} {c}")
            split.append(f"{i} {1 if k < 10 else 0}")
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels), ("train_test_split.txt", split),
                        ("classes.txt", [f"{c} {n}" for c, n in enumerate(classes, start=1)])):  # fmt: skip
        (base / name).write_text("\n".join(lines) + "\n")


def write_cars(root: Path) -> None:
    from scipy.io import savemat

    base = root / "stanford_cars"
    classes = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012"]
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(classes, dtype=object)})
    for split, folder, mat, per_class in (("train", "cars_train", base / "devkit" / "cars_train_annos.mat", 10),
                                          ("test", "cars_test", base / "cars_test_annos_withlabels.mat", 3)):  # fmt: skip
        records = []
        for c in range(2):
            for k in range(per_class):
                fname = f"{len(records) + 1:05d}.jpg"
                _jpg(base / folder / fname, 100 * c)
                records.append((10, 10, 100, 100, c + 1, fname))
        annotations = np.array(records, dtype=[("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")])
        savemat(mat, {"annotations": annotations})


def write_dogs(root: Path) -> None:
    from scipy.io import savemat

    base = root / "stanford_dogs"
    breeds = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]
    for split, per_class, offset in (("train", 10, 0), ("test", 3, 100)):
        names, labels = [], []
        for c, breed in enumerate(breeds):
            for k in range(per_class):
                rel = f"{breed}/{breed.split('-')[0]}_{offset + k}.jpg"
                _jpg(base / "Images" / rel, 110 * c)
                names.append(rel)
                labels.append(c + 1)
        (base / "lists").mkdir(parents=True, exist_ok=True)
        savemat(base / "lists" / f"{split}_list.mat", {"file_list": np.array(names, dtype=object), "labels": np.array(labels)})


def write_indoor(root: Path) -> None:
    base = root / "indoor67"
    train, test = [], []
    for c, name in enumerate(["airport_inside", "bakery", "bar"]):
        for k in range(12):
            rel = f"{name}/{name}_{k:04d}.jpg"
            _jpg(base / "Images" / rel, 70 * c)
            (train if k < 9 else test).append(rel)
    (base / "TrainImages.txt").write_text("\n".join(train) + "\n")
    (base / "TestImages.txt").write_text("\n".join(test) + "\n")


def write_decathlon(root: Path) -> None:
    for t, task in enumerate(DECATHLON_TASKS):
        for split, per_class in (("train", 10), ("val", 3)):
            images, annotations = [], []
            for c in range(2):
                for _ in range(per_class):
                    n = len(images) + 1 + 10_000 * (split == "val")
                    file_name = f"data/{task}/{split}/{n:07d}.jpg"
                    _jpg(root / file_name, 40 * c + 5 * t)
                    images.append({"id": n, "file_name": file_name, "width": 30, "height": 20})
                    annotations.append({"id": n, "image_id": n, "category_id": 10 * t + c + 1})
            categories = [{"id": 10 * t + c + 1, "name": f"{task}-{c}"} for c in range(2)]
            path = root / "annotations" / f"{task}_{split}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))


@pytest.fixture(scope="module")
def fgc_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fgc")
    write_aircraft(root)
    write_cub(root)
    write_cars(root)
    write_dogs(root)
    write_indoor(root)
    return root


def test_fgc_readers_follow_the_official_splits(fgc_root: Path) -> None:
    found = {t.name: t for t in scan_fgc(fgc_root)}
    aircraft, cub, indoor = found["fgvc-aircraft"], found["cub-200-2011"], found["mit-indoor-67"]
    assert aircraft.classes == ("Boeing 707-320", "A320", "DHC-8-100")  # names with spaces survive
    assert {s: len(f) for s, f in aircraft.files.items()} == {"train": 12, "val": 6, "test": 6}
    assert cub.classes == ("Black footed Albatross", "Laysan Albatross")
    assert len(cub.files["train"]) == 20 and len(cub.files["test"]) == 8 and "val" not in cub.files
    assert {label for _, label in cub.files["test"]} == {0, 1}
    cars, dogs = found["stanford-cars"], found["stanford-dogs"]
    assert cars.classes == ("AM General Hummer SUV 2000", "Acura RL Sedan 2012")
    assert {s: len(f) for s, f in cars.files.items()} == {"train": 20, "test": 6}
    assert [label for _, label in cars.files["test"]] == [0, 0, 0, 1, 1, 1] and all(Path(p).is_file() for p, _ in cars.files["train"])
    assert dogs.classes == ("Chihuahua", "Japanese spaniel")
    assert {s: len(f) for s, f in dogs.files.items()} == {"train": 20, "test": 6}
    assert all(Path(p).is_file() and ("Chihuahua" in p) == (label == 0) for p, label in dogs.files["train"])
    assert indoor.classes == ("airport_inside", "bakery", "bar")
    assert len(indoor.files["train"]) == 27 and all(Path(p).is_file() for p, _ in indoor.files["test"])
    tasks = {t.name: t for t in load_tasks("fgc", image_size=16, data_root=fgc_root)}
    assert tasks["fgvc-aircraft"].val.images.shape == (6, 3, 16, 16)  # official val kept
    assert len(tasks["cub-200-2011"].val) == 2 and len(tasks["cub-200-2011"].train) == 18  # 10% carved
    light, dark = tasks["mit-indoor-67"].test.images.mean(axis=(1, 2, 3)), tasks["mit-indoor-67"].test.labels
    assert light[dark == 2].mean() > light[dark == 0].mean()  # pixels and labels stay together


def test_decathlon_reader(tmp_path: Path) -> None:
    write_decathlon(tmp_path)
    found = scan_decathlon(tmp_path)
    assert [t.name for t in found] == list(DECATHLON_TASKS)
    assert found[3].classes == ("dtd-0", "dtd-1")  # category ids mapped to 0..n-1 in id order
    assert {len(t.files["train"]) for t in found} == {20} and {len(t.files["test"]) for t in found} == {6}
    assert all(Path(p).is_file() for t in found for p, _ in t.files["train"])
    tasks = load_tasks("decathlon", image_size=12, data_root=tmp_path)
    assert len(tasks) == 10 and tasks[0].train.images.shape[1:] == (3, 12, 12)


@pytest.mark.parametrize("name", list(FGC_READERS))
def test_a_missing_dataset_names_its_files_and_home(tmp_path: Path, name: str) -> None:
    reader = FGC_READERS[name]
    with pytest.raises(DatasetError) as error:
        reader.scan(tmp_path)
    message = str(error.value)
    assert reader.url in message and all(f in message for f in reader.expected) and "\n" not in message


def test_an_incomplete_decathlon_is_named(tmp_path: Path) -> None:
    write_decathlon(tmp_path)
    (tmp_path / "annotations" / "svhn_val.json").unlink()
    with pytest.raises(DatasetError, match="lacks 1 annotation files.*svhn_val.json.*robots.ox.ac.uk/~vgg/decathlon"):
        scan_decathlon(tmp_path)


@pytest.mark.slow
def test_a_study_on_the_fgc_files_end_to_end(fgc_root: Path, tmp_path: Path) -> None:
    preset = tmp_path / "mini-fgc.toml"
    preset.write_text('dataset = "fgc"\nbackbone = "resnet18-narrow"\nimage_size = 16\nbudget = 0.2\n[fidelity]\nepochs = 1\ntrain_size = 16\n')
    result = run_cli("run", "--preset", str(preset), "--data-root", str(fgc_root), "--n-trials", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import optuna

    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'mtlsearch.db'}")
    settings = summary.user_attrs["settings"]
    assert settings["dataset"] == "fgc"
    assert settings["tasks"] == ["fgvc-aircraft", "cub-200-2011", "stanford-cars", "stanford-dogs", "mit-indoor-67"]
    assert settings["num_classes"] == [3, 2, 2, 2, 3]
    missing = run_cli("create", "--preset", str(preset), "--data-root", str(tmp_path / "nothing"), "--study-name", "x", cwd=tmp_path)
    assert missing.returncode == 2 and "fgvc-aircraft" in missing.stderr and "robots.ox.ac.uk" in missing.stderr


@pytest.mark.parametrize("preset", ["embedded", "fashion-mux-scratch", "fgc-mobilenetv2", "fgc-resnet50", "decathlon-mobilenetv2"])
def test_every_shipped_preset_is_valid(preset: str) -> None:
    from mtlsearch._settings import available_presets, resolve_settings

    assert preset in available_presets()
    settings = resolve_settings(preset)
    if preset.startswith(("fgc", "decathlon")):  # the paper's settings
        assert settings.pretrained and settings.budget == 0.2 and settings.fidelity.head_warmup_epochs == 1
        assert settings.backbone in ("mobilenetv2_100", "resnet50")


@pytest.mark.parametrize("line, error", [
    ("pretrained = 1", "pretrained is 1: use true or false"),
    ("colour = 'red'", "unknown keys ['colour']"),
    ("budget = 2.0", "preset mine: budget is 2.0: use a finite number in [0, 1]"),
    ("backbone = 'vgg'", "unknown backbone"),
])  # fmt: skip
def test_a_bad_preset_is_one_clear_line(tmp_path: Path, line: str, error: str) -> None:
    preset = tmp_path / "mine.toml"
    preset.write_text(f'dataset = "fashion-domains"\n{line}\n')
    result = run_cli("create", "--preset", str(preset), "--study-name", "x", cwd=tmp_path)
    assert result.returncode == 2 and error in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "mtlsearch.db").exists()


@pytest.mark.slow
def test_a_paper_preset_without_weights_at_hand_fails_at_start(fgc_root: Path, tmp_path: Path) -> None:
    created = run_cli("create", "--preset", "fgc-mobilenetv2", "--data-root", str(fgc_root), "--study-name", "p", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-cache")}  # no network, nothing cached
    result = run_cli("worker", "--study-name", "p", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot get ImageNet weights for mobilenetv2_100") and "pretrained = false" in result.stderr
    import optuna

    study = optuna.load_study(study_name="p", storage=f"sqlite:///{tmp_path / 'mtlsearch.db'}")
    assert {t.state.name for t in study.trials} == {"WAITING"}  # nothing was started


def test_large_splits_decode_in_worker_processes_to_the_same_arrays(fgc_root: Path, monkeypatch) -> None:
    from mtlsearch.datasets import _folder

    serial = load_tasks("fgc", image_size=16, data_root=fgc_root)
    monkeypatch.setattr(_folder, "PARALLEL_FROM", 4)
    parallel = load_tasks("fgc", image_size=16, data_root=fgc_root)
    for a, b in zip(serial, parallel):
        for split in ("train", "val", "test"):
            assert np.array_equal(a.split(split).images, b.split(split).images)
            assert np.array_equal(a.split(split).labels, b.split(split).labels)
