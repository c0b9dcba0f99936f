"""The study contract (DESIGN.md): metrics, directions, settings, baselines, search space."""

from __future__ import annotations

import warnings
from pathlib import Path
from functools import cache
from typing import TYPE_CHECKING

from mtlsearch._schema import ALLOCATION, DATA_ATTR, SETTINGS_ATTR, SHAPES_ATTR, SPACE_ATTR, STRATEGY, TARGET_ATTR
from mtlsearch._settings import Settings, available_presets
from mtlsearch._space import SPACE_VERSION, BudgetSpace
from mtlsearch.errors import UsageError
from mtlsearch.models import BASELINES, BackboneSpec, backbone_spec, strategy_allocation

if TYPE_CHECKING:
    import optuna

DIRECTIONS = ("maximize", "minimize")
METRIC_NAMES = ("accuracy", "params")
DEFAULT_N_TRIALS = 12


def space_for(settings: Settings) -> BudgetSpace:
    return _space(settings.backbone, settings.granularity, settings.budget)


@cache
def _space(backbone: str, granularity: str, budget: float) -> BudgetSpace:
    return BudgetSpace(backbone_spec(backbone), granularity, budget)


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
    return Settings.from_dict(data, study=f"study {study.study_name!r}") if data else None


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
    version = study._storage.get_study_system_attrs(study._study_id).get(SPACE_ATTR, 1)
    if version != SPACE_VERSION:
        raise UsageError(
            f"study {name!r} was created by an older mtlsearch with search space {version} (one capped fraction per unit, "
            f"most proposals over budget); this one searches space {SPACE_VERSION}: create a new study (another --study-name "
            "or --storage), or read the old one with the mtlsearch version that made it"
        )
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
        check_data(study, settings)
        return study, False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(METRIC_NAMES))
    space = space_for(settings)
    study._storage.set_study_system_attr(study._study_id, SHAPES_ATTR, space.spec.to_dict())
    study._storage.set_study_system_attr(study._study_id, SPACE_ATTR, SPACE_VERSION)
    digest = _embedded_digest(settings)
    if digest is not None:
        study._storage.set_study_system_attr(study._study_id, DATA_ATTR, digest)
    study.set_user_attr(SETTINGS_ATTR, settings.to_dict())  # last: its presence says the study is made
    for strategy in BASELINES:
        allocation = strategy_allocation(
            strategy, space.spec, settings.granularity, settings.budget, seed=settings.seed  # type: ignore[arg-type]
        )
        study.enqueue_trial(space.params(allocation), user_attrs={STRATEGY: strategy, ALLOCATION: allocation})
    return study, True


def trial_allocation(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """A trial's allocation as recorded (proposals record it; baselines and retries are
    enqueued with it); empty for a trial that has none yet."""
    return dict(trial.user_attrs.get(ALLOCATION) or {})


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


def _embedded_digest(settings: Settings) -> str | None:
    from mtlsearch.datasets import EMBEDDED_BENCHMARKS, embedded_digest

    return embedded_digest(settings.dataset) if settings.dataset in EMBEDDED_BENCHMARKS else None


def check_data(study: optuna.Study, settings: Settings) -> None:
    """A study on an embedded benchmark trains on the file it was created with: one that this
    installation ships in another build (a new mtlsearch that rebuilt it) would score new trials
    on other images than the old ones. Studies made before the digest was recorded pass."""
    stored = study._storage.get_study_system_attrs(study._study_id).get(DATA_ATTR)
    here = _embedded_digest(settings)
    if stored is not None and here is not None and stored != here:
        raise UsageError(
            f"study {study.study_name!r} was created on build {stored} of the embedded benchmark {settings.dataset}, and this "
            f"mtlsearch ships build {here}: new trials would not compare with its trials; resume it with the mtlsearch "
            "version that created it, or start a new study (another --study-name)"
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
    """``<preset>-<backbone>-budget<b>``; a study of image folders passed to a preset of another
    dataset (``run --data-root DIR``) is named after the folder, not the preset."""
    prefix = settings.preset
    if settings.dataset == "folder" and settings.data_root and settings.preset in available_presets():
        prefix = f"folder-{Path(settings.data_root).name}"  # no shipped preset reads folders itself
    return f"{prefix}-{settings.backbone}-budget{settings.budget:g}"
