"""The study contract (DESIGN.md): metrics, directions, settings, baselines, search space."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from functools import cache, cached_property
from typing import TYPE_CHECKING

from mtlsearch._settings import Settings
from mtlsearch.errors import UsageError
from mtlsearch.models import (
    BASELINES,
    BackboneSpec,
    backbone_spec,
    budget_room,
    largest_fraction,
    strategy_allocation,
)

if TYPE_CHECKING:
    import optuna

DIRECTIONS = ("maximize", "minimize")
METRIC_NAMES = ("accuracy", "params")
SETTINGS_ATTR = "settings"
PARAM_PREFIX = "alloc:"
CONSTRAINTS_KEY = "constraints"  # the list optuna-dashboard 0.21 and Optuna's samplers read
SHAPES_ATTR = "mtlsearch:shape_table"  # study system attribute: the backbone's BackboneSpec
TARGET_ATTR = "n_trials"  # the study-wide target of trained trials that workers work towards
DEFAULT_N_TRIALS = 12


class AllocationSpace:
    """One float per unit: the fraction of its filters that are task-specific.

    Each range stops at the largest fraction the budget allows that unit on its own; the sum
    over units is left to the constraint, so over-budget proposals exist and are recorded.
    """

    def __init__(self, spec: BackboneSpec, granularity: str, budget: float) -> None:
        self.spec, self.granularity, self.budget = spec, granularity, budget

    @cached_property
    def caps(self) -> dict[str, float]:
        room = budget_room(self.spec, self.budget)
        return {u: largest_fraction(cs, room) for u, cs in self.spec.unit_convs(self.granularity).items()}  # type: ignore[arg-type]

    def suggest(self, trial: optuna.Trial) -> dict[str, float]:
        return {u: trial.suggest_float(PARAM_PREFIX + u, 0.0, cap) for u, cap in self.caps.items()}

    @staticmethod
    def params(allocation: Mapping[str, float]) -> dict[str, float]:
        return {PARAM_PREFIX + u: float(f) for u, f in allocation.items()}


def space_for(settings: Settings) -> AllocationSpace:
    return _space(settings.backbone, settings.granularity, settings.budget)


@cache
def _space(backbone: str, granularity: str, budget: float) -> AllocationSpace:
    return AllocationSpace(backbone_spec(backbone), granularity, budget)


NSGA2_POPULATION = 8  # small enough that a 40-trial study sees generations beyond the first


def make_sampler(settings: Settings) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded. Every one of them reads the ``constraints`` attribute of the
    trials it learns from; the baselines are the startup trials of the model-based ones."""
    import optuna

    startup = len(BASELINES)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=settings.seed)
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=settings.seed, population_size=NSGA2_POPULATION)
    if settings.sampler == "gp":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(seed=settings.seed, n_startup_trials=startup)
    return optuna.samplers.TPESampler(seed=settings.seed, multivariate=True, n_startup_trials=startup, constant_liar=True)


def stored_settings(study: optuna.Study) -> Settings | None:
    data = study.user_attrs.get(SETTINGS_ATTR)
    return Settings.from_dict(data) if data else None


def study_exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def load_study(storage: optuna.storages.BaseStorage, name: str, *, hint: str = "check --study-name and --storage") -> optuna.Study:
    """An existing mtlsearch study with its stored settings' sampler."""
    import optuna

    if not study_exists(storage, name):
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        found = f"existing studies: {', '.join(names)}" if names else "the storage holds no study"
        raise UsageError(f"no study named {name!r} ({found}): {hint}")
    study = optuna.load_study(study_name=name, storage=storage)
    settings = stored_settings(study)
    if settings is None:
        raise UsageError(f"study {name!r} was not created by mtlsearch: choose another --study-name")
    study.sampler = make_sampler(settings)
    return study


def create_or_load(
    storage: optuna.storages.BaseStorage, name: str, settings: Settings
) -> tuple[optuna.Study, bool]:
    """``(study, created)``. An existing study must have the same settings (else exit 2)."""
    import optuna

    if study_exists(storage, name):
        study = load_study(storage, name)
    else:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=list(DIRECTIONS),
            sampler=make_sampler(settings),
            load_if_exists=True,
        )
    stored = stored_settings(study)
    if stored is not None:  # an existing study, or another process created it first
        stored.check_same(settings, name)
        return study, False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(METRIC_NAMES))
    study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
    space = space_for(settings)
    study._storage.set_study_system_attr(study._study_id, SHAPES_ATTR, space.spec.to_dict())
    for strategy in BASELINES:
        allocation = strategy_allocation(
            strategy, space.spec, settings.granularity, settings.budget, seed=settings.seed  # type: ignore[arg-type]
        )
        study.enqueue_trial(space.params(allocation), user_attrs={"strategy": strategy})
    return study, True


def trial_allocation(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """A trial's allocation: as recorded, else from its (possibly enqueued) parameters."""
    params = trial.params or trial.system_attrs.get("fixed_params", {})
    return trial.user_attrs.get("allocation") or {k.removeprefix(PARAM_PREFIX): v for k, v in params.items()}


def study_spec(study: optuna.Study, settings: Settings) -> BackboneSpec:
    """The backbone's shape table as stored at creation (no torch needed), else built."""
    data = study._storage.get_study_system_attrs(study._study_id).get(SHAPES_ATTR)
    return BackboneSpec.from_dict(data) if data else backbone_spec(settings.backbone)


def check_shapes(study: optuna.Study, settings: Settings) -> None:
    """A worker's timm must build the backbone the study was created with."""
    data = study._storage.get_study_system_attrs(study._study_id).get(SHAPES_ATTR)
    if data and BackboneSpec.from_dict(data) != backbone_spec(settings.backbone):
        import timm

        raise UsageError(
            f"timm {timm.__version__} on this machine builds {settings.backbone} with other layers than the "
            f"machine that created study {study.study_name!r}: install the timm version used there"
        )


def set_target(study: optuna.Study, n_trials: int | None) -> int:
    """The study-wide target: ``n_trials`` when given (and stored), else the stored one or 12."""
    stored = study.user_attrs.get(TARGET_ATTR)
    if n_trials is None and stored is not None:
        return int(stored)
    target = n_trials or DEFAULT_N_TRIALS
    if target != stored:
        study.set_user_attr(TARGET_ATTR, target)
    return target


def default_study_name(settings: Settings) -> str:
    return f"{settings.preset}-{settings.backbone}-budget{settings.budget:g}"
