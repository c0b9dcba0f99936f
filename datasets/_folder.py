"""Image-folder tasks: ``ROOT/<task>/{train,val,test}/<class>/<image>``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtlsearch.datasets._task import SPLITS, Split, Task, carve, shuffled
from mtlsearch.errors import DatasetError

LAYOUT = "ROOT/<task>/{train,val,test}/<class>/<image>"
VAL_FRACTION = 0.1

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FolderTask:
    """A task found on disk, before any image is decoded."""

    name: str
    classes: tuple[str, ...]
    files: dict[str, list[tuple[str, int]]]  # split -> (path, class index); no "val" if carved


def scan_folder(root: Path) -> list[FolderTask]:
    """Find the tasks, classes and image files under ``root``; cheap, decodes nothing."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist: lay images out as {LAYOUT}")
    task_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not task_dirs:
        raise DatasetError(f"data root {root} has no task folders: lay images out as {LAYOUT}")
    tasks = []
    for task_dir in task_dirs:
        for split in ("train", "test"):
            if not (task_dir / split).is_dir():
                raise DatasetError(
                    f"task {task_dir.name!r} has no {split} folder at {task_dir / split}: "
                    f"lay images out as {LAYOUT}"
                )
        try:
            classes, class_to_idx = find_classes(str(task_dir / "train"))
        except FileNotFoundError:
            raise DatasetError(
                f"{task_dir / 'train'} has no class folders: lay images out as {LAYOUT}"
            ) from None
        files = {}
        for split in SPLITS:
            split_dir = task_dir / split
            if not split_dir.is_dir():
                continue
            extra = sorted({p.name for p in split_dir.iterdir() if p.is_dir()} - set(classes))
            if extra:
                raise DatasetError(
                    f"{split_dir} has classes {extra} that train does not: "
                    "every class must have training images"
                )
            present = {c: i for c, i in class_to_idx.items() if (split_dir / c).is_dir()}
            try:
                files[split] = make_dataset(str(split_dir), present, extensions=IMG_EXTENSIONS)
            except FileNotFoundError as exc:
                empty = str(exc).split(".")[0].removeprefix("Found no valid file for the classes ")
                raise DatasetError(
                    f"empty class folder(s) {empty} in {split_dir}: add images "
                    f"({', '.join(IMG_EXTENSIONS[:4])}, ...) or remove the folder"
                ) from None
        tasks.append(FolderTask(task_dir.name, tuple(classes), files))
    return tasks


PARALLEL_FROM = 512  # images; fewer are decoded in this process (workers cost a start-up)
PIXEL_LIMIT_ENV = "MTLSEARCH_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own limit: 1 GB of 24-bit pixels at most


def max_image_pixels() -> int:
    """The largest image (in pixels) an image folder may hold: ``$MTLSEARCH_MAX_IMAGE_PIXELS``,
    else Pillow's default. A larger one is refused before it is decoded."""
    import os

    raw = os.environ.get(PIXEL_LIMIT_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_MAX_IMAGE_PIXELS
    except ValueError:
        raise DatasetError(f"{PIXEL_LIMIT_ENV} is {raw!r}: use a whole number of pixels") from None
    if value < 1:
        raise DatasetError(f"{PIXEL_LIMIT_ENV} is {value}: use a whole number of pixels, at least 1")
    return value


class _Decoded:
    """A map-style dataset over image files: decoded, fitted to ``size`` px, as uint8 CHW.

    ``crop_pct`` below 1 keeps the centre ``crop_pct`` of the shorter side (timm's evaluation
    crop: the same as resizing the shorter side to ``size / crop_pct`` and cutting the centre)."""

    def __init__(self, files: list[tuple[str, int]], size: int, crop_pct: float = 1.0) -> None:
        self.files, self.size, self.bleed = files, size, max(0.0, (1.0 - crop_pct) / 2)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        import warnings

        from PIL import Image, ImageOps, UnidentifiedImageError

        path, label = self.files[i]
        limit = max_image_pixels()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)  # over the limit at all: refused
                Image.MAX_IMAGE_PIXELS = limit
                with Image.open(path) as img:
                    fitted = ImageOps.fit(img.convert("RGB"), (self.size, self.size), Image.Resampling.BILINEAR, bleed=self.bleed)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise DatasetError(
                f"image {path} has more pixels than the limit of {limit:,} (a decompression bomb?): remove it, or raise "
                f"the limit with {PIXEL_LIMIT_ENV}=N if the image is genuine"
            ) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"cannot read image {path} ({exc}): fix or remove the file") from None
        return np.asarray(fitted).transpose(2, 0, 1), label


def _decode(files: list[tuple[str, int]], size: int, progress: Progress | None, done: int, total: int, crop_pct: float = 1.0) -> Split:
    """Every image of a split in memory. Large splits are decoded by DataLoader worker
    processes (one per core, up to 8), so JPEG decoding and resizing do not serialise."""
    import os

    images = np.empty((len(files), 3, size, size), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    dataset = _Decoded(files, size, crop_pct)
    workers = min(8, os.cpu_count() or 1) if len(files) >= PARALLEL_FROM else 0
    if workers:
        from torch.utils.data import DataLoader

        loader = DataLoader(dataset, batch_size=64, num_workers=workers, collate_fn=list)  # type: ignore[arg-type]
        batches = (item for batch in loader for item in batch)
    else:
        batches = (dataset[i] for i in range(len(dataset)))
    for i, (image, label) in enumerate(batches):
        images[i], labels[i] = image, label
        if progress is not None:
            progress(done + i + 1, total)
    return Split(images, labels)


def load_folder(root: Path, *, image_size: int, progress: Progress | None = None, crop_pct: float = 1.0) -> list[Task]:
    """Decode every task under ``root`` into memory at ``image_size`` px."""
    return decode_tasks(scan_folder(root), image_size=image_size, progress=progress, crop_pct=crop_pct)


def decode_tasks(found: list[FolderTask], *, image_size: int, progress: Progress | None = None, crop_pct: float = 1.0) -> list[Task]:
    """Decode found tasks into memory at ``image_size`` px, once: training images whole (the
    square at the centre, where random-resized crops are cut from at every batch), validation
    and test images through the eval crop (``crop_pct`` of the shorter side, at the centre).

    A task without a ``val`` split gets one carved from train: a fixed 10% of every class.
    """
    total = sum(len(f) for t in found for f in t.files.values())
    done = 0
    tasks = []
    for task in found:
        splits = {}
        for split, files in task.files.items():
            splits[split] = _decode(files, image_size, progress, done, total, 1.0 if split == "train" else crop_pct)
            done += len(files)
        if "val" not in splits:
            train = splits["train"]
            kept, carved = carve(train.labels, VAL_FRACTION)
            splits["train"] = Split(train.images[kept], train.labels[kept])
            splits["val"] = Split(train.images[carved], train.labels[carved])
        if len(splits["val"]) == 0:
            raise DatasetError(
                f"task {task.name!r} has no validation images: add a val split or more "
                "training images per class"
            )
        tasks.append(
            Task(task.name, task.classes, shuffled(splits["train"]), splits["val"], splits["test"])
        )
    return tasks
