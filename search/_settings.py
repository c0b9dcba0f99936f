"""Study settings: a preset (TOML) with command-line overrides, validated, stored on the study."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mtlsearch._train import Fidelity
from mtlsearch.errors import SettingsMismatchError, UsageError

DEFAULT_PRESET = "embedded"
_TOP_KEYS = {"description", "dataset", "backbone", "pretrained", "image_size", "granularity", "budget", "seed", "sampler", "early_stop", "fidelity"}
SAMPLERS = ("tpe", "random", "nsga2", "gp")  # docs/search-quality.md measures them; tpe is the default
# Where the data lives may differ between machines; everything else defines the study.
_NOT_COMPARED = {"data_root", "weights", "description"}


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
    description: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["tasks"], out["num_classes"] = list(self.tasks), list(self.num_classes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        data = dict(data)
        data["fidelity"] = Fidelity(**data["fidelity"])
        data["tasks"], data["num_classes"] = tuple(data["tasks"]), tuple(data["num_classes"])
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
    """``(name, table)`` of a preset: a name in ``studies/`` or a path to a TOML file."""
    path = Path(preset)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise UsageError(f"preset file {path} does not exist: pass an existing .toml file or one of {', '.join(available_presets())}")
        text, name = path.read_text(), path.stem
    else:
        resource = resources.files("mtlsearch.studies").joinpath(f"{preset}.toml")
        if not resource.is_file():
            raise UsageError(f"unknown preset {preset!r}: choose one of {', '.join(available_presets())} or pass a .toml path")
        text, name = resource.read_text(), preset
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"preset {preset} is not valid TOML ({exc}): fix the file") from None
    unknown = sorted(set(table) - _TOP_KEYS)
    if unknown:
        raise UsageError(f"preset {preset} has unknown keys {unknown}: valid keys are {sorted(_TOP_KEYS)}")
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
    the path stored at creation; its content must be the study's (sha256)."""
    if settings.weights_sha256 is None:
        if path is not None:
            raise UsageError("the study was created without --weights: drop --weights, or create another study with it")
        return settings
    where, digest = _checkpoint(Path(path or settings.weights or ""))
    if digest != settings.weights_sha256:
        raise UsageError(f"weights {where} differ from the study's (sha256 {digest[:12]} vs {settings.weights_sha256[:12]}): pass the study's checkpoint with --weights")
    return dataclasses.replace(settings, weights=where)


def _check_range(name: str, value: float, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise UsageError(f"{name} is {value}: use a value in {bounds}")


def resolve_settings(preset: str = DEFAULT_PRESET, **overrides: Any) -> Settings:
    """Preset values, then every override that is not ``None``; validated.

    Override keys: the fields of ``Settings`` and of ``Fidelity`` (``epochs``, ``train_size``...).
    """
    from mtlsearch.models import check_granularity, get_backbone

    name, table = read_preset(preset)
    fidelity_table = dict(table.pop("fidelity", {}))
    fidelity_fields = {f.name for f in dataclasses.fields(Fidelity)}
    unknown = sorted(set(fidelity_table) - fidelity_fields)
    if unknown:
        raise UsageError(f"preset {preset} has unknown fidelity keys {unknown}: valid keys are {sorted(fidelity_fields)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    fidelity_table.update({k: given.pop(k) for k in list(given) if k in fidelity_fields})
    values = {
        "dataset": "fashion-domains",
        "backbone": "resnet18-narrow",
        "image_size": 28,
        "granularity": "block",
        "budget": 0.1,
        "seed": 0,
        **table,
        **given,
    }
    if values.get("weights") is not None:
        values["weights"], values["weights_sha256"] = _checkpoint(Path(values["weights"]))
    if values.get("data_root") is not None:
        if values["dataset"] == "fashion-domains":  # the embedded benchmark has no root: image folders
            values["dataset"] = "folder"
        values["data_root"] = str(Path(values["data_root"]).resolve())
    try:
        fidelity = Fidelity(**fidelity_table)
        settings = Settings(preset=name, fidelity=fidelity, **values)
    except TypeError as exc:
        raise UsageError(f"preset {preset} is malformed ({exc}): check it against studies/embedded.toml") from None
    _check_range("--budget", settings.budget, 0.0, 1.0)
    _check_range("--image-size", settings.image_size, 8)
    _check_range("--epochs", fidelity.epochs, 1)
    _check_range("--train-size", fidelity.train_size, 2)
    _check_range("batch_size", fidelity.batch_size, 1)
    _check_range("lr", fidelity.lr, 0.0)
    _check_range("--head-warmup-epochs", fidelity.head_warmup_epochs, 0)
    if settings.sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler {settings.sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if settings.early_stop is not None:
        _check_range("--early-stop", settings.early_stop, 0.0, 1.0)
    get_backbone(settings.backbone)
    check_granularity(settings.granularity)
    if not isinstance(settings.pretrained, bool):
        raise UsageError(f"pretrained is {settings.pretrained!r}: use true or false")
    return settings
