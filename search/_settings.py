"""Study settings: a preset (TOML) with command-line overrides, validated, stored on the study."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mtlsearch._validate import FLAGS, SAMPLERS, validate
from mtlsearch.errors import SettingsMismatchError, UsageError

DEFAULT_PRESET = "embedded"
_TOP_KEYS = {"description", "dataset", "backbone", "pretrained", "weights", "image_size", "granularity", "budget", "seed", "sampler",
             "early_stop", "augment", "execution", "fidelity", "noise"}  # fmt: skip
# Where the data lives may differ between machines; everything else defines the study.
_NOT_COMPARED = {"data_root", "weights", "description", "noise", "execution"}
# A preset's measured noise holds for the setting it was measured at: these as the preset has them.
_NOISE_DEPENDS_ON = ("dataset", "backbone", "image_size", "granularity", "pretrained", "weights_sha256", "augment", "fidelity")
__all__ = ["DEFAULT_PRESET", "SAMPLERS", "Fidelity", "Settings", "available_presets", "read_preset", "resolve_settings", "with_weights"]


@dataclass(frozen=True)
class Fidelity:
    """How briefly each candidate is trained; fixed for a whole study."""

    epochs: int = 5
    train_size: int | None = 1000  # training images per task, at most (None: every image)
    val_size: int | None = None  # validation images per task a candidate is scored on, at most (None: every image)
    batch_size: int = 64  # per task and step
    lr: float = 0.2
    weight_decay: float = 5e-4
    momentum: float = 0.9
    head_warmup_epochs: int = 0  # epochs of each task's classifier alone, on frozen features, first

    def describe(self) -> str:
        """``25 epochs of 250 images per task``, and the validation subset where there is one."""
        scored = f", scored on {self.val_size} validation images per task" if self.val_size is not None else ""
        return f"{self.epochs} epochs of {self.train_size} images per task{scored}"


@dataclass(frozen=True)
class Settings:
    """Everything that defines a search (DESIGN.md: stored on the study when it is created)."""

    preset: str
    dataset: str
    backbone: str
    image_size: int
    budget: float
    granularity: str
    seed: int
    fidelity: Fidelity
    tasks: tuple[str, ...] = ()
    num_classes: tuple[int, ...] = ()
    data_root: str | None = None
    pretrained: bool = False  # ImageNet weights through timm (downloaded by timm when online)
    weights: str | None = None  # a local checkpoint: where it is on this machine (not compared)
    weights_sha256: str | None = None  # what it is (compared: the same weights on every machine)
    sampler: str = "tpe"  # one of SAMPLERS
    early_stop: float | None = None  # opt-in: stop a candidate this far below the median at a third of its steps
    augment: bool = False  # random-resized crop and flip of every training batch (on in the real-data presets)
    # how a training step runs the tasks (auto, loop, stacked; ``_execution``): the way a run or a
    # worker takes when its --execution is not given. Stored, not compared: a worker may pin another.
    execution: str = field(default="auto", compare=False)
    description: str = field(default="", compare=False)
    # the std of the difference in mean val accuracy between two candidates trained with the same
    # seed, as measured for the preset (docs/search-quality.md); None where unmeasured
    noise: float | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["tasks"], out["num_classes"] = list(self.tasks), list(self.num_classes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, study: str = "the study") -> Settings:
        """Settings as a study stores them, validated as a preset's are (a study stored by hand or
        by an older version is refused in one line)."""
        data = {k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}}
        data["fidelity"] = {**dataclasses.asdict(Fidelity()), **(data.get("fidelity") or {})}
        validate(data, origin=lambda key: f"{study} stores {key}, which")
        data["fidelity"] = Fidelity(**data["fidelity"])
        data["tasks"], data["num_classes"] = tuple(data.get("tasks", ())), tuple(data.get("num_classes", ()))
        return cls(**data)

    def differences(self, other: Settings) -> list[str]:
        """``name: stored -> asked`` for every setting that differs (fidelity flattened)."""
        mine, theirs = _flat(self.to_dict()), _flat(other.to_dict())
        return [
            f"{key}: {mine.get(key)!r} -> {theirs.get(key)!r}"
            for key in sorted(set(mine) | set(theirs))
            if key not in _NOT_COMPARED and mine.get(key) != theirs.get(key)
        ]

    def check_same(self, asked: Settings, study_name: str) -> None:
        diffs = self.differences(asked)
        if diffs:
            raise SettingsMismatchError(
                f"study {study_name!r} was created with other settings ({'; '.join(diffs)}): "
                "rerun with the study's settings or choose another --study-name"
            )


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in d.items() if k != "fidelity"}
    out.update({f"fidelity.{k}": v for k, v in d["fidelity"].items()})
    return out


def available_presets() -> list[str]:
    folder = resources.files("mtlsearch.studies")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def read_preset(preset: str) -> tuple[str, dict[str, Any]]:
    """``(name, table)`` of a preset: a name in ``studies/`` or a path to a TOML file. A
    ``weights`` file in it is relative to the preset's own folder (the package's ``studies/``
    for a shipped one); the table holds it as an absolute path."""
    path = Path(preset)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise UsageError(f"preset file {path} does not exist: pass an existing .toml file or one of {', '.join(available_presets())}")
        text, name, folder = path.read_text(), path.stem, path.resolve().parent
    else:
        resource = resources.files("mtlsearch.studies").joinpath(f"{preset}.toml")
        if not resource.is_file():
            raise UsageError(f"unknown preset {preset!r}: choose one of {', '.join(available_presets())} or pass a .toml path")
        text, name, folder = resource.read_text(), preset, Path(str(resources.files("mtlsearch.studies")))
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"preset {preset} is not valid TOML ({exc}): fix the file") from None
    unknown = sorted(set(table) - _TOP_KEYS)
    if unknown:
        raise UsageError(f"preset {preset} has unknown keys {unknown}: valid keys are {sorted(_TOP_KEYS)}")
    if isinstance(table.get("weights"), str):  # anything else is named by validation
        table["weights"] = str(folder / table["weights"])
    return name, table


def _checkpoint(path: Path) -> tuple[str, str]:
    """``(absolute path, sha256)`` of a weights file."""
    import hashlib

    if not path.is_file():
        raise UsageError(f"weights file {path} does not exist: pass a .safetensors file or a saved state dict")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return str(path.resolve()), digest.hexdigest()


def with_weights(settings: Settings, path: Path | None) -> Settings:
    """The study's settings with its checkpoint found on this machine: ``path`` if given, else
    the path stored at creation, else (when that is not on this machine) the checkpoint with the
    study's content that this installation ships beside its presets; its content must be the
    study's (sha256)."""
    if settings.weights_sha256 is None:
        if path is not None:
            raise UsageError("the study was created without --weights: drop --weights, or create another study with it")
        return settings
    if path is None and not Path(settings.weights or "").is_file():
        path = _shipped_weights(settings.weights_sha256)
    where, digest = _checkpoint(Path(path or settings.weights or ""))
    if digest != settings.weights_sha256:
        raise UsageError(f"weights {where} differ from the study's (sha256 {digest[:12]} vs {settings.weights_sha256[:12]}): pass the study's checkpoint with --weights")
    return dataclasses.replace(settings, weights=where)


def _shipped_weights(sha256: str) -> Path | None:
    """The checkpoint this installation ships beside its presets whose content is ``sha256``,
    whichever preset carries it now (a study keeps the name of the preset it was created from,
    and presets get renamed: ``fashion-mux-pretrained`` became ``embedded``)."""
    shipped = (Path(str(entry)) for entry in resources.files("mtlsearch.studies").iterdir())
    return next((path for path in shipped if path.suffix in (".pt", ".safetensors") and _checkpoint(path)[1] == sha256), None)


def resolve_settings(preset: str = DEFAULT_PRESET, **overrides: Any) -> Settings:
    """Preset values, then every override that is not ``None``; validated in one place
    (``_validate``), each bad value named with where it came from.

    Override keys: the fields of ``Settings`` and of ``Fidelity`` (``epochs``, ``train_size``...).
    """
    from mtlsearch.datasets import EMBEDDED, EMBEDDED_BENCHMARKS
    from mtlsearch.models import get_backbone

    name, table = read_preset(preset)
    noise = table.pop("noise", None)
    fidelity_table = table.pop("fidelity", {})
    if not isinstance(fidelity_table, dict):
        raise UsageError(f"preset {name}: fidelity is {fidelity_table!r}: use a [fidelity] table (see studies/embedded.toml)")
    fidelity_fields = {f.name for f in dataclasses.fields(Fidelity)}
    unknown = sorted(set(fidelity_table) - fidelity_fields)
    if unknown:
        raise UsageError(f"preset {name} has unknown fidelity keys {unknown}: valid keys are {sorted(fidelity_fields)}")
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items() if v is not None}
    given_fidelity = {k: given.pop(k) for k in list(given) if k in fidelity_fields}
    defaults = {"dataset": EMBEDDED, "backbone": "resnet18-narrow", "image_size": 28, "granularity": "block", "budget": 0.1, "seed": 0}
    preset_fidelity = {**dataclasses.asdict(Fidelity()), **fidelity_table}
    values = {**defaults, **table, **given, "preset": name, "noise": noise, "fidelity": {**preset_fidelity, **given_fidelity}}

    def origin(key: str) -> str:
        from_cli = key in given or key.removeprefix("fidelity.") in given_fidelity
        return FLAGS.get(key, key) if from_cli else f"preset {name}: {key}"

    validate(values, origin=origin)
    if values.get("weights") is not None:
        values["weights"], values["weights_sha256"] = _checkpoint(Path(values["weights"]))
    if values.get("data_root") is not None:
        if values["dataset"] in EMBEDDED_BENCHMARKS:  # an embedded benchmark has no root: image folders
            values["dataset"] = "folder"
        values["data_root"] = str(Path(values["data_root"]).resolve())
    settings = Settings(**{**values, "noise": None, "fidelity": Fidelity(**values["fidelity"])})
    if noise is not None:
        measured = {**defaults, **table, "fidelity": Fidelity(**preset_fidelity)}  # the setting the noise was measured at
        if table.get("weights"):  # the preset's own checkpoint, hashed above unless --weights replaced it
            measured["weights_sha256"] = settings.weights_sha256 if "weights" not in given else _checkpoint(Path(table["weights"]))[1]
        else:
            measured["weights_sha256"] = None
        if all(getattr(settings, k) == measured.get(k, False) for k in _NOISE_DEPENDS_ON):
            settings = dataclasses.replace(settings, noise=float(noise))
    get_backbone(settings.backbone)
    return settings
