"""The paper's datasets in their official on-disk formats, read into ``FolderTask`` lists.

Each reader finds the images and labels of one dataset under ``ROOT/<its folder>`` from the
files its authors publish (split lists, label files, annotation JSON), decoding nothing; a
missing or incomplete folder is a ``DatasetError`` that lists the files expected and where the
dataset is published. Splits without an official validation set get one carved from train
(10% of every class) when they are decoded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mtlsearch.datasets._folder import FolderTask
from mtlsearch.errors import DatasetError


@dataclass(frozen=True)
class Official:
    """One dataset: its task name, folder under the data root, the files it needs, its home."""

    name: str
    folder: str
    expected: tuple[str, ...]
    url: str
    read: Callable[[Path], FolderTask]

    def scan(self, root: Path) -> FolderTask:
        base = Path(root) / self.folder
        missing = [f for f in self.expected if not (base / f).exists()]
        if missing:
            raise DatasetError(
                f"{self.name}: {base} lacks {', '.join(missing)} (expected: {', '.join(self.expected)}); "
                f"download it from {self.url} and unpack it as {Path(root) / self.folder}"
            )
        return self.read(base)


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _read_aircraft(base: Path) -> FolderTask:
    """FGVC-Aircraft 2013b, variant level (100 classes), official train / val / test lists."""
    from torchvision.datasets import FGVCAircraft

    files = {}
    for split in ("train", "val", "test"):
        data = FGVCAircraft(str(base.parent), split=split, annotation_level="variant", download=False)
        files[split] = list(zip(data._image_files, data._labels))
    return FolderTask("fgvc-aircraft", tuple(data.classes), files)


def _read_cub(base: Path) -> FolderTask:
    """CUB-200-2011: images.txt, image_class_labels.txt, train_test_split.txt, classes.txt."""
    names = dict(line.split(" ", 1) for line in _lines(base / "images.txt"))
    labels = dict(line.split(" ", 1) for line in _lines(base / "image_class_labels.txt"))
    is_train = dict(line.split(" ", 1) for line in _lines(base / "train_test_split.txt"))
    classes = [line.split(" ", 1)[1].split(".", 1)[-1] for line in _lines(base / "classes.txt")]
    files: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for image_id, name in names.items():
        split = "train" if is_train[image_id].strip() == "1" else "test"
        files[split].append((str(base / "images" / name), int(labels[image_id]) - 1))
    return FolderTask("cub-200-2011", tuple(c.replace("_", " ") for c in classes), files)


def _read_indoor(base: Path) -> FolderTask:
    """MIT Indoor Scenes (67): Images/<class>/<image> and the official TrainImages.txt / TestImages.txt."""
    classes = sorted(p.name for p in (base / "Images").iterdir() if p.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    files = {}
    for split, listed in (("train", "TrainImages.txt"), ("test", "TestImages.txt")):
        files[split] = [(str(base / "Images" / rel), index[rel.split("/", 1)[0]]) for rel in _lines(base / listed)]
    return FolderTask("mit-indoor-67", tuple(classes), files)


def _loadmat(path: Path) -> dict:  # type: ignore[type-arg]
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DatasetError(f"reading {path.name} needs scipy: pip install 'mtlsearch[datasets]'") from None
    return loadmat(str(path), squeeze_me=True)


def _read_cars(base: Path) -> FolderTask:
    """Stanford Cars, through torchvision's ``StanfordCars``: devkit/cars_meta.mat,
    devkit/cars_train_annos.mat and cars_test_annos_withlabels.mat (needs scipy)."""
    try:
        import scipy.io  # noqa: F401
    except ImportError:
        raise DatasetError("reading Stanford Cars needs scipy: pip install 'mtlsearch[datasets]'") from None
    from torchvision.datasets import StanfordCars

    files = {}
    for split in ("train", "test"):
        data = StanfordCars(str(base.parent), split=split, download=False)
        files[split] = [(str(path), int(label)) for path, label in data._samples]
    return FolderTask("stanford-cars", tuple(str(c) for c in data.classes), files)


def _read_dogs(base: Path) -> FolderTask:
    """Stanford Dogs: Images/<wnid>-<breed>/ and lists/{train,test}_list.mat."""
    folders = sorted(p.name for p in (base / "Images").iterdir() if p.is_dir())
    classes = tuple(f.split("-", 1)[1].replace("_", " ") for f in folders)
    files = {}
    for split in ("train", "test"):
        listed = _loadmat(base / "lists" / f"{split}_list.mat")
        files[split] = [(str(base / "Images" / str(f)), int(label) - 1) for f, label in zip(listed["file_list"], listed["labels"])]
    return FolderTask("stanford-dogs", classes, files)


FGC_READERS = {
    "fgvc-aircraft": Official(
        "fgvc-aircraft", "fgvc-aircraft-2013b",
        ("data/images", "data/variants.txt", "data/images_variant_train.txt", "data/images_variant_val.txt",
         "data/images_variant_test.txt"),
        "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/", _read_aircraft,
    ),
    "cub-200-2011": Official(
        "cub-200-2011", "CUB_200_2011",
        ("images", "images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt"),
        "https://www.vision.caltech.edu/datasets/cub_200_2011/", _read_cub,
    ),
    "stanford-cars": Official(
        "stanford-cars", "stanford_cars",
        ("cars_train", "cars_test", "devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_test_annos_withlabels.mat"),
        "https://ai.stanford.edu/~jkrause/cars/car_dataset.html", _read_cars,
    ),
    "stanford-dogs": Official(
        "stanford-dogs", "stanford_dogs", ("Images", "lists/train_list.mat", "lists/test_list.mat"),
        "http://vision.stanford.edu/aditya86/ImageNetDogs/", _read_dogs,
    ),
    "mit-indoor-67": Official(
        "mit-indoor-67", "indoor67", ("Images", "TrainImages.txt", "TestImages.txt"),
        "https://web.mit.edu/torralba/www/indoor.html", _read_indoor,
    ),
}  # fmt: skip

DECATHLON_TASKS = (
    "aircraft", "cifar100", "daimlerpedcls", "dtd", "gtsrb", "imagenet12", "omniglot", "svhn", "ucf101", "vgg-flowers",
)  # fmt: skip
DECATHLON_URL = "https://www.robots.ox.ac.uk/~vgg/decathlon/"


def _decathlon_split(root: Path, task: str, split: str) -> tuple[list[tuple[str, int]], list[str]]:
    """COCO-style ``annotations/<task>_<split>.json``: images, their category, the categories."""
    data = json.loads((root / "annotations" / f"{task}_{split}.json").read_text(encoding="utf-8"))
    categories = sorted(data["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(categories)}
    label = {a["image_id"]: index[a["category_id"]] for a in data["annotations"]}
    files = [(str(root / image["file_name"]), label[image["id"]]) for image in data["images"]]
    return files, [str(c["name"]) for c in categories]


def scan_decathlon(root: Path, tasks: tuple[str, ...] = DECATHLON_TASKS) -> list[FolderTask]:
    """The Visual Decathlon from its annotation files. Its test labels are not published, so
    the official val split is the test split here and val is carved from train."""
    root = Path(root)
    expected = [f"annotations/{t}_{s}.json" for t in tasks for s in ("train", "val")]
    missing = [f for f in expected if not (root / f).is_file()]
    if missing:
        raise DatasetError(
            f"decathlon: {root} lacks {len(missing)} annotation files (e.g. {missing[0]}; expected "
            f"annotations/<task>_train.json and _val.json for {', '.join(tasks)}, images under data/<task>/); "
            f"download the devkit and images from {DECATHLON_URL}"
        )
    found = []
    for task in tasks:
        train, classes = _decathlon_split(root, task, "train")
        test, _ = _decathlon_split(root, task, "val")
        found.append(FolderTask(task, tuple(classes), {"train": train, "test": test}))
    return found


def scan_fgc(root: Path, names: tuple[str, ...] = tuple(FGC_READERS)) -> list[FolderTask]:
    """The fine-grained benchmark's tasks available as readers, from ``ROOT/<their folders>``."""
    return [FGC_READERS[n].scan(Path(root)) for n in names]
