"""One validation of a study's settings, whatever they came from: command-line options, a
preset, or a study's stored settings. Types are strict (a number is not a string, a whole
number is not 28.5, nothing is NaN or infinite) and every value has its range; the first
problem is one line that names where the value came from, the key, the value and what to use.

pydantic does the checking (declared in pyproject; typer brings it too); it is imported when settings are
validated, so ``mtlsearch --help`` does not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mtlsearch._execution import EXECUTIONS
from mtlsearch.errors import UsageError

SAMPLERS = ("tpe", "random", "nsga2", "gp")
GRANULARITIES = ("layer", "block", "stage")

# what to use, per key: the end of every message
FIXES = {
    "preset": "a preset name or a .toml path",
    "dataset": "a dataset name (fashion-mux, fashion-domains, folder, fgc, decathlon)",
    "backbone": "a registered backbone (mtlsearch backbones)",
    "image_size": "a whole number of pixels from 8 to 4096",
    "budget": "a finite number in [0, 1]",
    "granularity": f"one of {', '.join(GRANULARITIES)}",
    "seed": "a whole number from 0 to 4294967295",
    "sampler": f"one of {', '.join(SAMPLERS)}",
    "early_stop": "a finite number in [0, 1], or leave it out",
    "noise": "a finite number in [0, 1], or leave it out",
    "pretrained": "true or false",
    "augment": "true or false",
    "execution": f"one of {', '.join(EXECUTIONS)}",
    "data_root": "a folder path",
    "weights": "a file path",
    "weights_sha256": "the sha256 of the checkpoint",
    "description": "a string",
    "tasks": "a list of task names",
    "num_classes": "a list of whole numbers",
    "fidelity": "a table of epochs, train_size, val_size, batch_size, lr, weight_decay, momentum, head_warmup_epochs",
    "fidelity.epochs": "a whole number from 1 to 100000",
    "fidelity.train_size": "a whole number of images, at least 2",
    "fidelity.val_size": "a whole number of images, at least 1, or leave it out for every image",
    "fidelity.batch_size": "a whole number from 1 to 100000",
    "fidelity.lr": "a finite number in (0, 10]",
    "fidelity.weight_decay": "a finite number in [0, 1]",
    "fidelity.momentum": "a finite number in [0, 1)",
    "fidelity.head_warmup_epochs": "a whole number from 0 to 10000",
}
# the command-line option of a key, where it has one
FLAGS = {
    "budget": "--budget", "image_size": "--image-size", "granularity": "--granularity", "seed": "--seed", "sampler": "--sampler",
    "early_stop": "--early-stop", "backbone": "--backbone", "data_root": "--data-root", "weights": "--weights", "augment": "--augment", "execution": "--execution",
    "fidelity.epochs": "--epochs", "fidelity.train_size": "--train-size", "fidelity.val_size": "--val-size", "fidelity.head_warmup_epochs": "--head-warmup-epochs",
}  # fmt: skip


def _models() -> tuple[type, type]:
    from typing import Literal, Optional

    from pydantic import BaseModel, ConfigDict, Field

    strict = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    class FidelityModel(BaseModel):
        model_config = strict
        epochs: int = Field(ge=1, le=100_000)
        train_size: Optional[int] = Field(ge=2)  # noqa: UP045 - pydantic evaluates it here, on Python 3.10 too
        val_size: Optional[int] = Field(ge=1)  # noqa: UP045
        batch_size: int = Field(ge=1, le=100_000)
        lr: float = Field(gt=0, le=10)
        weight_decay: float = Field(ge=0, le=1)
        momentum: float = Field(ge=0, lt=1)
        head_warmup_epochs: int = Field(ge=0, le=10_000)

    class SettingsModel(BaseModel):
        model_config = strict
        preset: str
        dataset: str
        backbone: str
        image_size: int = Field(ge=8, le=4096)
        budget: float = Field(ge=0, le=1)
        granularity: Literal["layer", "block", "stage"]
        seed: int = Field(ge=0, le=2**32 - 1)
        fidelity: FidelityModel
        tasks: tuple[str, ...] = ()
        num_classes: tuple[int, ...] = ()
        data_root: Optional[str] = None  # noqa: UP045
        pretrained: bool = False
        weights: Optional[str] = None  # noqa: UP045
        weights_sha256: Optional[str] = None  # noqa: UP045
        sampler: Literal["tpe", "random", "nsga2", "gp"] = "tpe"
        early_stop: Optional[float] = Field(default=None, ge=0, le=1)  # noqa: UP045
        augment: bool = False
        execution: Literal["auto", "loop", "stacked"] = "auto"
        description: str = ""
        noise: Optional[float] = Field(default=None, ge=0, le=1)  # noqa: UP045

    return SettingsModel, FidelityModel


def validate(values: Mapping[str, Any], *, origin: Callable[[str], str]) -> None:
    """Check ``values`` (the fields of ``Settings``, ``fidelity`` a mapping of ``Fidelity``'s);
    ``origin(key)`` says where a value came from (``"--budget"``, ``"preset embedded: budget"``)."""
    from pydantic import ValidationError

    settings_model, _ = _models()
    data = {**values, "fidelity": dict(values.get("fidelity") or {})}
    for key in ("tasks", "num_classes"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    try:
        settings_model(**data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            raise UsageError(f"{origin(key)} is not a setting: valid keys are {sorted(k for k in FIXES if '.' not in k)}") from None
        if error["type"] == "missing":
            raise UsageError(f"{origin(key)} is missing: use {FIXES.get(key, 'a value')}") from None
        raise UsageError(f"{origin(key)} is {_shown(error['input'])}: use {FIXES.get(key, 'a valid value')}") from None


def _shown(value: Any) -> str:
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, str):
        return repr(value) + " (a string)" if _numeric(value) else repr(value)
    return repr(value)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
