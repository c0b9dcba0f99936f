"""All tasks in one pass (``--execution stacked``) against one task at a time (``loop``)."""

from __future__ import annotations

import copy
import dataclasses
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import run_cli
from mtlsearch.models import BACKBONES, backbone_spec, build_model, stack_tasks, strategy_allocation
from mtlsearch.models._layers import TaskConv2d, TaskNorm


def _allocation(backbone: str, strategy: str = "random", budget: float = 0.2) -> dict[str, float]:
    return strategy_allocation(strategy, backbone_spec(backbone), "block", budget, seed=1)


def _model(backbone: str, classes=(5, 3, 7), strategy: str = "random", budget: float = 0.2):  # type: ignore[no-untyped-def]
    allocation = _allocation(backbone, strategy, budget)
    torch.manual_seed(0)
    model = build_model(backbone, num_classes=list(classes), allocation=allocation, granularity="block")
    with torch.no_grad():  # no zero-initialised norm, and tasks that differ from the start
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_stacked_tasks_compute_what_one_task_at_a_time_does(backbone: str) -> None:
    loop = _model(backbone).double().train()
    stacked = copy.deepcopy(loop)
    assert stacked.stack_blocker is None
    generator = torch.Generator().manual_seed(0)
    xs = [torch.randn(4, 3, 32, 32, generator=generator, dtype=torch.float64) for _ in range(3)]
    ys = [torch.randint(0, c, (4,), generator=generator) for c in (5, 3, 7)]

    one_by_one = [loop(x, t) for t, x in enumerate(xs)]
    together = stacked.forward_stacked(stack_tasks(xs))
    sum(F.cross_entropy(o, y) for o, y in zip(one_by_one, ys)).backward()
    sum(F.cross_entropy(o, y) for o, y in zip(together, ys)).backward()

    for a, b in zip(one_by_one, together):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    for (name, a), b in zip(loop.named_parameters(), stacked.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-7, atol=1e-9, msg=name)
    for (name, a), b in zip(loop.named_buffers(), stacked.buffers()):  # each task's running statistics
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=name)


def _calls(monkeypatch, model, run) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    counts = {"conv2d": 0, "batch_norm": 0}
    for name in counts:
        real = getattr(F, name)

        def counted(*args, _real=real, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            counts[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(F, name, counted)
    run()
    monkeypatch.undo()
    return counts["conv2d"], counts["batch_norm"]


def test_stacked_tasks_make_one_call_per_layer_whatever_the_number_of_tasks(monkeypatch) -> None:
    model = _model("resnet18-narrow", classes=(10, 10, 10, 10))
    convs = sum(isinstance(m, TaskConv2d) for m in model.modules())
    norms = sum(isinstance(m, TaskNorm) for m in model.modules())
    assert convs == len(backbone_spec("resnet18-narrow").convs) and norms > 0
    xs = [torch.randn(2, 3, 28, 28) for _ in range(4)]
    assert _calls(monkeypatch, model, lambda: [model(x, t) for t, x in enumerate(xs)]) == (4 * convs, 4 * norms)
    assert _calls(monkeypatch, model, lambda: model.forward_stacked(stack_tasks(xs))) == (convs, norms)


def test_models_saved_with_one_norm_module_per_task_still_load() -> None:
    model = _model("resnet18-narrow").eval()
    old = {}  # the layout saved before the norms' rows were stacked: <norm>.copies.<task>.<name>
    norms = {name for name, m in model.named_modules() if isinstance(m, TaskNorm)}
    for key, value in model.state_dict().items():
        owner, _, field = key.rpartition(".")
        if owner in norms:
            old.update({f"{owner}.copies.{t}.{field}": value[t].clone() for t in range(3)})
        else:
            old[key] = value.clone()
    fresh = build_model("resnet18-narrow", num_classes=[5, 3, 7], allocation=_allocation("resnet18-narrow"), granularity="block").eval()
    fresh.load_state_dict(old, strict=True)
    x = torch.randn(2, 3, 28, 28)
    for task in range(3):
        torch.testing.assert_close(fresh(x, task), model(x, task))


@pytest.mark.slow
def test_auto_times_both_ways_once_then_keeps_the_faster(tiny_settings) -> None:
    """The verdict lives in the dict the caller passes (a worker keeps one for all its
    candidates), not in the process: a fresh dict times again."""
    from mtlsearch._train import train_candidate

    settings, tasks = tiny_settings
    fidelity = dataclasses.replace(settings.fidelity, batch_size=8, epochs=2)  # 16 steps: enough to time
    chosen, verdicts = [], {}
    for execution in ("auto", "auto", "loop", "stacked"):
        model = _model(settings.backbone, classes=settings.num_classes, strategy="bottom-specific", budget=0.1)
        result = train_candidate(model, tasks, fidelity, device="cpu", seed=0, execution=execution, verdicts=verdicts)
        chosen.append(result.execution)
        if len(chosen) == 1:  # the first training timed both ways and kept a verdict
            [(key, stacked)] = verdicts.items()
            assert chosen[0] == ("stacked" if stacked else "loop")
            verdicts[key] = not stacked  # the next training of its kind must follow the verdict, not time again
    assert chosen[1] != chosen[0]
    assert chosen[2:] == ["loop", "stacked"]
    other: dict = {}
    train_candidate(_model(settings.backbone, classes=settings.num_classes, strategy="bottom-specific", budget=0.1), tasks, fidelity,
                    device="cpu", seed=0, execution="auto", verdicts=other)  # fmt: skip
    assert len(other) == 1  # nothing kept between callers


def test_auto_trains_every_step_the_way_it_keeps(tiny_settings) -> None:
    """The timing runs on a copy of the model: a training with ``auto`` ends, to the bit, where a
    training pinned to the way it kept ends, and not where the other way ends (the two sum in
    another order), so a study's first candidate is no mix of both ways."""
    from mtlsearch._train import train_candidate

    settings, tasks = tiny_settings
    fidelity = dataclasses.replace(settings.fidelity, batch_size=8, epochs=2)  # 16 steps: enough to time

    def trained(execution: str, verdicts: dict) -> tuple[str, dict]:
        model = _model(settings.backbone, classes=settings.num_classes, strategy="bottom-specific", budget=0.1)
        result = train_candidate(model, tasks, fidelity, device="cpu", seed=0, execution=execution, verdicts=verdicts)
        return result.execution, model.state_dict()

    verdicts: dict = {}
    kept, auto = trained("auto", verdicts)
    assert len(verdicts) == 1  # it did time
    _, pinned = trained(kept, {})
    _, other = trained("stacked" if kept == "loop" else "loop", {})
    assert all(torch.equal(auto[k], pinned[k]) for k in auto)
    assert not all(torch.equal(auto[k], other[k]) for k in auto)


def test_bad_execution_exits_2_and_stores_nothing(tmp_path: Path) -> None:
    result = run_cli("run", "--execution", "fast", "--storage", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--execution 'fast'" in result.stderr and "auto, loop, stacked" in result.stderr
    assert not (tmp_path / "s.db").exists()


@pytest.mark.slow
def test_the_execution_is_stored_with_each_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = run_cli("run", "--storage", url, "--study-name", "s", "--n-trials", "1", "--epochs", "1", "--train-size", "64", "--val-size", "200",
                     "--execution", "stacked", "--out", "r", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "s.db") as db:
        rows = db.execute("select value_json from trial_user_attributes where key = 'execution'").fetchall()
    assert rows == [('"stacked"',)]
    shown = run_cli("show", "--storage", url, "--trial", "0", cwd=tmp_path)
    assert shown.returncode == 0 and "tasks run stacked" in shown.stdout
    exported = run_cli("export", "--storage", url, "--out", "t.csv", cwd=tmp_path)
    frame = pd.read_csv(tmp_path / "t.csv")
    assert exported.returncode == 0 and list(frame.loc[frame.state == "COMPLETE", "execution"]) == ["stacked"]


def _ways(db_file: Path) -> dict[str, list[str]]:
    """Per study: how its trained trials ran their tasks."""
    import json

    with sqlite3.connect(db_file) as db:
        rows = db.execute("select s.study_name, a.value_json from trial_user_attributes a join trials t on a.trial_id = t.trial_id "
                          "join studies s on t.study_id = s.study_id where a.key = 'execution' order by t.trial_id").fetchall()  # fmt: skip
    ways: dict[str, list[str]] = {}
    for study, value in rows:
        ways.setdefault(study, []).append(json.loads(value))
    return ways


@pytest.mark.slow
def test_a_study_runs_its_presets_way_and_its_workers_the_stored_one(tmp_path: Path) -> None:
    """Without --execution, a run takes its preset's way (the embedded preset pins stacked, so
    that a run repeats bit for bit) and says so; a study created with --execution loop keeps
    it, and a worker that joins without the option runs the loop too."""
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    brief = ("--n-trials", "1", "--epochs", "1", "--train-size", "64", "--val-size", "200")
    ran = run_cli("run", "--storage", url, "--study-name", "preset", *brief, "--out", "r", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "tpe sampler · tasks run stacked" in " ".join(ran.stdout.split())  # the study's description
    made = run_cli("create", "--storage", url, "--study-name", "pinned", *brief, "--execution", "loop", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    joined = run_cli("worker", "--storage", url, "--study-name", "pinned", cwd=tmp_path)
    assert joined.returncode == 0, joined.stderr
    assert _ways(tmp_path / "s.db") == {"preset": ["stacked"], "pinned": ["loop"]}
    stored = optuna.load_study(study_name="pinned", storage=url).user_attrs["settings"]
    assert stored["execution"] == "loop"


def test_older_studies_run_auto_and_the_way_is_not_a_mismatch() -> None:
    from mtlsearch._settings import Settings, resolve_settings

    settings = resolve_settings()
    older = {k: v for k, v in settings.to_dict().items() if k != "execution"}  # stored before the key existed
    assert settings.execution == "stacked" and Settings.from_dict(older).execution == "auto"
    assert settings.differences(dataclasses.replace(settings, execution="loop")) == []
    assert settings.differences(dataclasses.replace(settings, budget=0.2)) == ["budget: 0.1 -> 0.2"]


@pytest.mark.parametrize("backbone", ["resnet18-narrow", "mobilenetv2_100"])
def test_the_cuda_layout_takes_models_with_task_specific_filters(backbone: str) -> None:
    # the CUDA fast path lays the weights out channels-last; a task-specific filter bank is a
    # 5-D tensor, which Module.to(memory_format=channels_last) refuses (it failed every
    # candidate with task-specific filters on a GPU)
    from mtlsearch._train import channels_last

    model = _model(backbone, strategy="bottom-specific").eval()
    assert any(p.dim() == 5 for p in model.parameters())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = [model(x, t) for t in range(3)]
    channels_last(model)
    four_d = [p for p in model.parameters() if p.dim() == 4]
    assert four_d and all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d)
    for t, expected in enumerate(before):
        torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last), t), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_cpu_scoring_lays_the_input_channels_last_and_predicts_what_training_layout_does(backbone: str) -> None:
    # evaluate() and predict() score channels-last on the CPU (the forward is faster there);
    # training stays NCHW, so every cached result keeps being reproduced
    from mtlsearch._train import to_model_input

    model = _model(backbone, strategy="bottom-specific").eval()
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    scored = to_model_input(images, model.input_config, scoring=True)
    trained = to_model_input(images, model.input_config)
    assert scored.is_contiguous(memory_format=torch.channels_last) and not scored.is_contiguous()
    assert trained.is_contiguous() and torch.equal(scored, trained)
    with torch.inference_mode():
        for t in range(3):
            fast, plain = model(scored, t), model(trained, t)
            torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-4)  # the order of summation differs
            assert torch.equal(fast.argmax(1), plain.argmax(1))
