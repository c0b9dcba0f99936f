"""Full training of a chosen candidate, the saved model, reloading it; local checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from mtlsearch import load_trained, predict
from mtlsearch._storage import open_storage
from mtlsearch._study import create_or_load
from mtlsearch._trained import save_trained, train_full
from mtlsearch.errors import UsageError
from mtlsearch.models import Candidate, backbone_spec, build_model, get_backbone, strategy_allocation
from mtlsearch.models._layers import TaskConv2d, TaskNorm


def _bottom(settings) -> Candidate:
    spec = backbone_spec(settings.backbone)
    allocation = strategy_allocation("bottom-specific", spec, settings.granularity, settings.budget)
    return Candidate.create(spec, settings.num_classes, allocation, settings.granularity, strategy="bottom-specific")


@pytest.mark.slow
def test_saved_model_reloads_with_the_same_predictions(tiny_settings, tmp_path: Path) -> None:
    settings, tasks = tiny_settings
    result = train_full(_bottom(settings), settings, tasks, epochs=1, device="cpu")
    folder = save_trained(result, tmp_path / "m", ["a log line"])
    model, card = load_trained(folder)
    for index, task in enumerate(tasks):
        images = torch.from_numpy(task.test.images[:200])
        assert torch.equal(predict(model, images, index), predict(result.model.eval(), images, index))
    assert card["allocation"] == result.card["allocation"] and card["strategy"] == "bottom-specific"
    assert card["params"]["total"] == sum(p.numel() for p in model.parameters())
    assert set(card["test_accuracy"]) == {t.name for t in tasks}
    assert (folder / "train.log").read_text() == "a log line\n"


@pytest.mark.slow
def test_train_command_end_to_end(tiny_settings, tmp_path: Path) -> None:
    settings, _ = tiny_settings
    url = f"sqlite:///{tmp_path / 'study.db'}"
    create_or_load(open_storage(url), "s", settings)
    result = run_cli("train", "--storage", url, "--strategy", "top-specific", "--epochs", "1", "--out", "model", "--execution", "stacked", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert card["execution"] == "stacked"
    assert card["source"] == {"study": "s", "strategy": "top-specific"} and card["epochs"] == 1
    assert card["train_images"] == dict.fromkeys(settings.tasks, 250)  # all training images, not the brief subset of 64
    log = (tmp_path / "model" / "train.log").read_text()
    assert "test" in log and all(t in log for t in settings.tasks)
    # the reloaded model scores what the card says on the test split
    from mtlsearch._train import evaluate
    from mtlsearch.datasets import load_tasks

    model, _ = load_trained(tmp_path / "model")
    tasks = load_tasks(settings.dataset, image_size=settings.image_size)
    assert evaluate(model, tasks, split="test") == card["test_accuracy"]
    both = run_cli("train", "--storage", url, "--strategy", "shared", "--trial", "0", "--out", "x", cwd=tmp_path)
    assert both.returncode == 2 and both.stderr == "error: pass exactly one of --trial N and --strategy NAME\n"
    waiting = run_cli("train", "--storage", url, "--trial", "0", "--out", "x", cwd=tmp_path)
    assert waiting.returncode == 2 and "trial 0 has no allocation yet (WAITING)" in waiting.stderr


@pytest.mark.parametrize("fmt", ["safetensors", "state_dict"])
def test_a_local_checkpoint_initialises_the_backbone_and_every_task_copy(tiny_settings, tmp_path: Path, fmt: str) -> None:
    settings, _ = tiny_settings
    torch.manual_seed(123)
    source = get_backbone(settings.backbone).create()
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    state = source.state_dict()
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        path = tmp_path / "w.pt"
        torch.save({"state_dict": {**state, "fc.weight": torch.zeros(10, 128)}}, path)  # nested, with a classifier
    candidate = _bottom(settings)
    model = build_model(settings.backbone, num_classes=settings.num_classes, allocation=candidate.allocation_dict,
                        granularity=settings.granularity, weights=path)  # fmt: skip
    checked = 0
    for name, module in model.backbone.named_modules():
        if isinstance(module, TaskConv2d) and module.specific is not None:
            weight = state[f"{name}.weight"]
            for task in range(len(settings.num_classes)):
                assert torch.equal(module.specific[task], weight[: module.k])
            if module.shared is not None:
                assert torch.equal(module.shared, weight[module.k :])
            checked += 1
        elif isinstance(module, TaskNorm):
            for task in range(len(settings.num_classes)):
                assert torch.equal(module.weight[task], state[f"{name}.weight"])
                assert torch.equal(module.running_var[task], state[f"{name}.running_var"])
    assert checked > 0


def test_a_checkpoint_of_another_architecture_is_refused(tiny_settings, tmp_path: Path) -> None:
    settings, _ = tiny_settings
    path = tmp_path / "other.pt"
    torch.save(get_backbone("resnet18").create().state_dict(), path)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    create_or_load(open_storage(url), "s", settings)
    result = run_cli("train", "--storage", url, "--strategy", "shared", "--weights", str(path), "--out", "m", cwd=tmp_path)
    assert result.returncode == 2 and "does not fit this backbone" in result.stderr and result.stderr.count("\n") == 1


def test_head_warmup_trains_only_the_classifiers(tiny_settings) -> None:
    import dataclasses

    from mtlsearch._train import evaluate, warm_up_heads

    settings, tasks = tiny_settings
    torch.manual_seed(0)
    model = build_model(settings.backbone, num_classes=settings.num_classes, allocation=_bottom(settings).allocation_dict,
                        granularity=settings.granularity)  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chance = evaluate(model, tasks, split="train")
    fidelity = dataclasses.replace(settings.fidelity, head_warmup_epochs=3, lr=0.05)
    warm_up_heads(model, tasks, fidelity, device="cpu", generator=torch.Generator().manual_seed(0))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("heads.") for k in changed)  # norms' running statistics included
    warmed = evaluate(model, tasks, split="train")
    assert sum(warmed.values()) > sum(chance.values())


def test_head_warmup_is_a_study_setting(tmp_path: Path) -> None:
    result = run_cli("create", "--study-name", "w", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--head-warmup-epochs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import optuna

    study = optuna.load_study(study_name="w", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert study.user_attrs["settings"]["fidelity"]["head_warmup_epochs"] == 2
    bad = run_cli("create", "--study-name", "v", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--head-warmup-epochs", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "--head-warmup-epochs is -1" in bad.stderr


def test_divergence_is_caught_once_an_epoch(tiny_settings) -> None:
    import dataclasses

    from mtlsearch._train import train_candidate

    settings, tasks = tiny_settings
    model = build_model(settings.backbone, num_classes=settings.num_classes, allocation={}, granularity=settings.granularity)
    fidelity = dataclasses.replace(settings.fidelity, lr=1e12, epochs=2)
    with pytest.raises(FloatingPointError, match=r"training diverged in epoch [12] \(a non-finite loss\)"):
        train_candidate(model, tasks, fidelity, device="cpu", seed=0)


@pytest.mark.slow
def test_a_search_from_a_local_checkpoint(tiny_settings, tmp_path: Path) -> None:
    import shutil

    import optuna
    from safetensors.torch import save_file

    settings, _ = tiny_settings
    torch.manual_seed(7)
    source = get_backbone(settings.backbone).create()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    url = f"sqlite:///{tmp_path / 's.db'}"
    tiny = ("--epochs", "1", "--train-size", "64", "--val-size", "200")
    created = run_cli("create", "--study-name", "w", "--storage", url, "--weights", str(path), "--n-trials", "1", *tiny, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    stored = optuna.load_study(study_name="w", storage=url).user_attrs["settings"]
    assert stored["weights"] == str(path) and len(stored["weights_sha256"]) == 64
    # another machine keeps the same file elsewhere: fine; other weights: refused
    elsewhere = tmp_path / "copy" / "w.safetensors"
    elsewhere.parent.mkdir()
    shutil.copy(path, elsewhere)
    other = tmp_path / "other.safetensors"
    save_file({k: torch.zeros_like(v).contiguous() for k, v in source.state_dict().items()}, str(other))
    refused = run_cli("worker", "--study-name", "w", "--storage", url, "--weights", str(other), cwd=tmp_path)
    assert refused.returncode == 2 and "differ from the study's" in refused.stderr
    worked = run_cli("worker", "--study-name", "w", "--storage", url, "--weights", str(elsewhere), cwd=tmp_path)
    assert worked.returncode == 0, worked.stderr
    assert optuna.load_study(study_name="w", storage=url).trials[0].state.name == "COMPLETE"
    # a different checkpoint is a different study
    again = run_cli("run", "--study-name", "w", "--storage", url, "--weights", str(other), *tiny, cwd=tmp_path)
    assert again.returncode == 2 and "weights_sha256" in again.stderr


def test_a_preset_carries_its_checkpoint_beside_it(tmp_path: Path) -> None:
    import hashlib
    import shutil

    from mtlsearch._settings import resolve_settings

    shipped = resolve_settings("embedded")
    assert Path(shipped.weights).is_file() and Path(shipped.weights).name == "resnet18-narrow-grey-2000img.pt"
    assert shipped.weights_sha256 == hashlib.sha256(Path(shipped.weights).read_bytes()).hexdigest()
    assert shipped.noise == 0.014  # measured from this checkpoint
    # the preset's measured noise does not hold for other weights
    other = tmp_path / "other.pt"
    torch.save({k: v + 1 for k, v in torch.load(shipped.weights, weights_only=True).items()}, other)
    assert resolve_settings("embedded", weights=str(other)).noise is None
    # a preset file's checkpoint is relative to the file, wherever the command runs
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(shipped.weights, folder / "start.pt")
    (folder / "mine.toml").write_text('dataset = "fashion-mux"\nbackbone = "resnet18-narrow"\nweights = "start.pt"\n')
    mine = resolve_settings(str(folder / "mine.toml"))
    assert mine.weights == str(folder / "start.pt") and mine.weights_sha256 == shipped.weights_sha256
    (folder / "start.pt").unlink()
    with pytest.raises(UsageError, match=r"weights file .*start\.pt does not exist"):
        resolve_settings(str(folder / "mine.toml"))


@pytest.mark.slow
def test_a_study_of_a_shipped_checkpoint_joins_where_another_machine_installed_it(tmp_path: Path) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    tiny = ("--epochs", "1", "--train-size", "64", "--val-size", "200")
    created = run_cli("create", "--study-name", "p", "--storage", url, "--n-trials", "1", *tiny, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    study = optuna.load_study(study_name="p", storage=url)
    stored = study.user_attrs["settings"]
    assert stored["weights_sha256"].startswith("73f705f0bd37")
    # the creator's installation is elsewhere, and its preset had the name this one had before
    # it became the default: the worker finds the checkpoint with the study's content in its own
    elsewhere = "/opt/another-machine/mtlsearch/studies/resnet18-narrow-grey-2000img.pt"
    study.set_user_attr("settings", {**stored, "weights": elsewhere, "preset": "fashion-mux-pretrained"})
    worked = run_cli("worker", "--study-name", "p", "--storage", url, cwd=tmp_path)
    assert worked.returncode == 0, worked.stderr
    assert optuna.load_study(study_name="p", storage=url).trials[0].state.name == "COMPLETE"
